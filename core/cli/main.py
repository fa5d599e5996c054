"""The ``corolla`` command line. Verbs are imported on use, so ``--help`` stays fast."""
from __future__ import annotations

import argparse
import os
import pkgutil
import sys
import warnings
from typing import Callable, Sequence

#: verb -> (lazy reference to its ``run(args)``, one-line help, needs -c CONFIG)
VERBS: dict[str, tuple[str, str, bool]] = {
    "plugins": ("corolla.cli.plugins:run", "list installed components, or show one", False),
    "config": ("corolla.cli.config:run", "print the merged, validated config", True),
    "data": ("corolla.cli.data:run", "split a folder of class folders for training; write flowers102 list files; "
                                     "check a config's list files", False),
    "train": ("corolla.cli.jobs:train", "train a model (resume with Global.checkpoints)", True),
    "eval": ("corolla.cli.jobs:evaluate", "evaluate Global.pretrained_model on DataLoader.Eval", True),
    "infer": ("corolla.cli.jobs:infer", "classify Infer.infer_imgs with the trained model", True),
    "export": ("corolla.cli.jobs:export", "export the inference model to Global.save_inference_dir", True),
    "predict": ("corolla.cli.jobs:predict", "classify Infer.infer_imgs with the exported model (Paddle Inference or ONNX Runtime)", True),
    "quickstart": ("corolla.cli.quickstart:run", "generate a small dataset, then train, evaluate, export and predict", False),
    "env": ("corolla.cli.env:run", "show the Python, Paddle, CUDA, devices, threads and optional packages corolla sees", False),
    "search": ("corolla.cli.search:run", "staged hyper-parameter search (PaddleClas's search.yaml) on Optuna", True),
    "new-plugin": ("corolla.cli.new_plugin:run", "write a ready-to-install plugin package with a conformance test", False),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corolla",
        description="corolla: pluggable image classification on PaddlePaddle",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    plugin_opts = argparse.ArgumentParser(add_help=False)
    group = plugin_opts.add_argument_group("plugins")
    group.add_argument("-p", dest="plugin_flags", action="append", default=[], metavar="no:NAME",
                       help="disable the plugin NAME (never imported); repeatable")
    group.add_argument("--strict-plugins", action="store_true",
                       help="a plugin that fails to import is an error, not a warning")
    group.add_argument("--prefer", action="append", default=[], metavar="NAME=DIST",
                       help="when several plugins give NAME, use the one from distribution DIST")

    for verb, (_, help_text, needs_config) in VERBS.items():
        parents = [plugin_opts, _config_options(verb)] if needs_config else [plugin_opts]
        verb_parser = sub.add_parser(verb, help=help_text, description=help_text, parents=parents)
        _add_verb_arguments(verb, verb_parser)
    return parser


def _config_options(verb: str) -> argparse.ArgumentParser:
    """``-c`` and ``-o``: ``-c`` names a training config, or for ``search`` a search file."""
    options = argparse.ArgumentParser(add_help=False)
    config_help = ("search file (PaddleClas's search.yaml layout: base_config_file, search_dict, ...; "
                   "see docs/search.md)" if verb == "search" else "YAML config (PaddleClas 2.x layout)")
    options.add_argument("-c", "--config", required=True, help=config_help)
    options.add_argument("-o", "--override", action="append", default=[], metavar="KEY.PATH=VALUE",
                         help="override a config value (YAML scalar); '+KEY=VALUE' adds a new key; repeatable")
    return options


def _add_verb_arguments(verb: str, parser: argparse.ArgumentParser) -> None:
    if verb == "plugins":
        parser.add_argument("action", nargs="?", choices=["list", "show"], default="list")
        parser.add_argument("name", nargs="?", help="component to show (bare or DIST:NAME)")
        parser.add_argument("--kind", help="only this kind (backbone, loss, transform, ...)")
    elif verb == "data":
        from corolla.cli.data import add_arguments

        add_arguments(parser)
    elif verb == "train":
        parser.add_argument("--overwrite", action="store_true",
                            help="when the run folder holds an earlier run, move it aside (to <folder>.before-<time>) "
                                 "and start anew")
    if verb in ("train", "eval"):
        from corolla.config.sections import EVAL_ENGINES

        parser.add_argument("--eval-engine", choices=EVAL_ENGINES,
                            help="run evaluation in dygraph or through an inference engine (Paddle Inference with "
                                 "oneDNN, ONNX Runtime; CPU only); sets Global.eval_engine (default auto: ONNX "
                                 "Runtime where installed, else Paddle Inference, where it pays off; "
                                 "see docs/deployment.md)")
    elif verb == "export":
        parser.add_argument("--format", default="paddle", choices=["paddle", "onnx", "all"],
                            help="paddle: inference.json/.pdiparams; onnx: inference.onnx (needs the onnx extra); "
                                 "all: both (default: %(default)s)")
    elif verb in ("infer", "predict"):
        parser.add_argument("--json", metavar="FILE", help="also write one JSON object per image to FILE")
        parser.add_argument("--skip-bad-images", action="store_true",
                            help="skip images that cannot be read (each is named; the count is given at the end)")
        if verb == "predict":
            parser.add_argument("--backend", default="paddle", choices=["paddle", "onnxruntime"],
                                help="run the export's Paddle model with Paddle Inference, or its inference.onnx "
                                     "with ONNX Runtime (default: %(default)s)")
    elif verb == "search":
        from corolla.cli.search import add_arguments

        add_arguments(parser)
    elif verb == "new-plugin":
        from corolla.cli.new_plugin import add_arguments

        add_arguments(parser)
    elif verb == "quickstart":
        parser.add_argument("--workdir", default="corolla_quickstart", help="folder for data, output and model (default: %(default)s)")
        parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY.PATH=VALUE",
                            help="override a value of the shipped configs/quickstart.yaml; repeatable")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``corolla`` console script and ``python -m corolla``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag in args.plugin_flags:
        if not flag.startswith("no:"):
            parser.error(f"-p {flag}: expected no:NAME")
    warnings.showwarning = _show_warning
    from corolla.plugin.errors import CorollaDeprecationWarning

    # Python hides DeprecationWarning outside __main__, but a config's deprecated name is for its
    # user to see; -W or PYTHONWARNINGS still decide (the idiom of the warnings module's docs).
    if not sys.warnoptions:
        warnings.simplefilter("default", CorollaDeprecationWarning)
    # Paddle's C++-extension helper warns on import; corolla builds no extensions.
    warnings.filterwarnings("ignore", message="No ccache found")
    # Paddle 3's BatchNorm warns on every training call that it tracks statistics, as it always did.
    warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")
    # Paddle's own graph building (Global.to_static, export) asks a graph tensor for its place.
    warnings.filterwarnings("ignore", message="(Tensor|Variable) do not have 'place' interface")
    # Paddle's C++ side logs "New Executor is Running" and the like at INFO level; warnings stay.
    os.environ.setdefault("GLOG_minloglevel", "1")
    run: Callable[[argparse.Namespace], int] = pkgutil.resolve_name(VERBS[args.verb][0])

    from corolla.plugin.errors import CorollaError

    try:
        return run(args) or 0
    except CorollaError as exc:
        print(f"corolla {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"corolla {args.verb}: interrupted{_how_to_resume(args.verb, exc)}", file=sys.stderr)
        return 130


def _how_to_resume(verb: str, interrupt: KeyboardInterrupt) -> str:
    """The advice after ``interrupted``. Training's comes with its exception
    (``corolla.engine.checkpointing.TrainingInterrupted``, not imported here: that imports paddle)."""
    if verb == "search":
        return "; run the same command again to resume the search (finished trials are not run again)"
    resume = getattr(interrupt, "resume", None) if verb == "train" else None
    return f"; {resume}" if resume else ""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"warning: {message}", file=file or sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
