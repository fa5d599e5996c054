"""``corolla search -c search.yaml [-o ...] [--storage URL] [--jobs N]``: argument handling;
the search itself is :mod:`corolla.search`."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run a staged hyper-parameter search: PaddleClas's search.yaml (paths relative to PaddleClas's "
        "root are found from the search file) or corolla's richer form of it. -o KEY=VALUE sets the search "
        "file (search_dict.0.search_values=[...]) or, for a config section, every trial's config; "
        "base:KEY=VALUE or distill:KEY=VALUE sets one of the two configs. Run the same command again to "
        "resume; run it on several machines with one --storage to share the work. See docs/search.md.")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage URL shared by every worker (postgresql://..., mysql://..., sqlite:///...); "
                             "default: sqlite:///<output_dir>/search.db")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="trials this process runs at once (CPU: OMP_NUM_THREADS split between them; "
                             "GPU: the search file's gpus split between them); default: %(default)s")
    parser.add_argument("--poll", type=float, default=5.0, metavar="SECONDS",
                        help="how often an idle worker looks for a trial another worker left or finished "
                             "(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from corolla.cli.common import interrupt_on_sigterm, registry_from_args
    from corolla.search import read_search, run_search, split_overrides

    overrides = split_overrides(args.override)
    spec = read_search(args.config, overrides)
    plugin_args = [arg for flag in args.plugin_flags for arg in ("-p", flag)] + [f"--prefer={item}" for item in args.prefer]
    if args.strict_plugins:
        plugin_args.append("--strict-plugins")
    interrupt_on_sigterm()  # a terminated search ends its trials so that they run again
    run_search(spec, overrides, storage=args.storage, jobs=args.jobs, plugin_args=plugin_args,
               registry_of=lambda config: registry_from_args(args, config), poll=args.poll)
    return 0
