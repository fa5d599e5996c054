"""``corolla data``: split a folder of your images, make flowers102 list files, or check a
config's list files without decoding."""
from __future__ import annotations

import argparse

from corolla.plugin.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["split", "flowers102", "check"],
                        help="split: train/val list files, a class map and a ready config for a folder with one "
                             "sub-folder of images per class; flowers102: write list files from jpg/ + "
                             "imagelabels.mat + setid.mat; check: check the list files of a config's DataLoader sections")
    parser.add_argument("root", nargs="?", help="split: the folder of class folders; "
                                                "flowers102: the folder holding jpg/, imagelabels.mat and setid.mat")
    parser.add_argument("--images", default="jpg", help="flowers102: the image folder inside ROOT (default: %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="split: the share of each class's images for validation (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="split: the seed of the split (default: %(default)s)")
    parser.add_argument("--out", help="split: where the list files and the config go (default: ROOT)")
    parser.add_argument("-c", "--config", help="check: YAML config; split: the config to fill in "
                                               "(default: the shipped configs/finetune/folder_224.yaml)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="check: override a config value; split: set a value of the written config; repeatable")


def run(args: argparse.Namespace) -> int:
    if args.action == "split":
        return _split(args)
    if args.action == "flowers102":
        return _flowers102(args)
    return _check(args)


def _split(args: argparse.Namespace) -> int:
    from pathlib import Path

    from corolla.cli.common import registry_from_args
    from corolla.config.load import shipped_configs
    from corolla.config.planner import read_plan
    from corolla.data.split import split_folder
    from corolla.data.split_config import finetune_config, write_config

    if not args.root:
        raise ConfigError("data split: give ROOT, the folder with one sub-folder of images per class")
    split = split_folder(args.root, val_fraction=args.val_fraction, seed=args.seed, out=args.out)
    template = args.config or shipped_configs() / "finetune" / "folder_224.yaml"
    config = finetune_config(split, template, args.override)
    read_plan(config, registry_from_args(args, config))  # the written config trains as it is
    written = write_config(config, Path(args.out or args.root) / "finetune.yaml",
                           made_by=f"corolla data split {args.root} --val-fraction {args.val_fraction} --seed {args.seed}"
                                   + "".join(f" -o {override}" for override in args.override))
    print(f"{args.root}: {split.describe()}")
    print(f"  lists:  {split.train_list}, {split.val_list.name}, {split.label_list.name}")
    print(f"  config: {written}")
    print(f"train:    corolla train -c {written}")
    return 0


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
        print(f"DataLoader.{mode}: {describe_check(datasets[mode], class_num, skip_bad_images=skip, mode=mode)}")
    if "Train" in datasets and "Eval" in datasets:
        check_same_classes(datasets["Train"], datasets["Eval"], "Eval")
    return 0
