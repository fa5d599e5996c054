"""``corolla data``: make flowers102 list files, or check a config's list files without decoding."""
from __future__ import annotations

import argparse

from corolla.plugin.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["flowers102", "check"],
                        help="flowers102: write list files from jpg/ + imagelabels.mat + setid.mat; "
                             "check: check the list files of a config's DataLoader sections")
    parser.add_argument("root", nargs="?", help="flowers102: the folder holding jpg/, imagelabels.mat and setid.mat")
    parser.add_argument("--images", default="jpg", help="flowers102: the image folder inside ROOT (default: %(default)s)")
    parser.add_argument("-c", "--config", help="check: YAML config")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="check: override a config value; repeatable")


def run(args: argparse.Namespace) -> int:
    if args.action == "flowers102":
        return _flowers102(args)
    return _check(args)


def _flowers102(args: argparse.Namespace) -> int:
    from corolla.data.flowers102 import write_flowers102_lists

    if not args.root:
        raise ConfigError("data flowers102: give ROOT, the folder with jpg/, imagelabels.mat and setid.mat")
    counts = write_flowers102_lists(args.root, args.images)
    for name, count in counts.items():
        print(f"{args.root}/{name}: {count} lines")
    return 0


def _check(args: argparse.Namespace) -> int:
    from corolla.cli.common import plan_from_args
    from corolla.data.checks import check_same_classes, describe_check
    from corolla.data.loader import build_dataset

    if not args.config:
        raise ConfigError("data check: give the config with -c CONFIG")
    plan = plan_from_args(args)
    if not plan.loaders:
        raise ConfigError(f"{args.config}: no DataLoader.Train or DataLoader.Eval section to check")
    class_num = plan.model.class_num if plan.model else plan.settings.class_num
    datasets = {}
    for mode, loader in plan.loaders.items():
        datasets[mode], _ = build_dataset(loader, plan.registry)
        skip = loader.loader.skip_bad_images
        print(f"DataLoader.{mode}: {describe_check(datasets[mode], class_num, skip_bad_images=skip)}")
    if "Train" in datasets and "Eval" in datasets:
        check_same_classes(datasets["Train"], datasets["Eval"], "Eval")
    return 0
