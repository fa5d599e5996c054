"""Does distillation with unlabeled images help a small student? A small offline experiment.

On a generated, real-looking data set (``corolla.testing.images``: shapes, hues and textures over
cluttered, noisy backgrounds) with few labeled images and more unlabeled ones, it trains

1. a teacher (ResNet18_vd) on the labeled images,
2. the student (PPLCNet_x0_25) alone on the labeled images,
3. the same student distilled from the frozen teacher: ground-truth cross entropy on the
   labeled images plus DML (symmetric KL, PULC's SKL-UGI) on labeled and unlabeled images,

all three with the same optimiser, schedule and epochs, through the ordinary ``corolla train``
engine, and prints the top-1 accuracy of each on the validation images (last epoch's weights).
With so few images one run says little, so it repeats all of it for several seeds (each seed
generates its own data set) and prints the mean and every seed's figure.

    .venv/bin/python benchmarks/distillation_experiment.py            # about 15 minutes on 2 idle cores
    .venv/bin/python benchmarks/distillation_experiment.py --help     # sizes, epochs, models

It ends with the wall time and the process's peak memory (resident set), with the Paddle
version and the commit, for the README's table.
"""
from __future__ import annotations

import argparse
import copy
import resource
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import paddle

import corolla
from corolla.engine.evaluate import evaluate_config
from corolla.engine.train import train
from corolla.config.planner import read_plan
from corolla.testing.datasets import SyntheticDataset, make_list_dataset


def transform_ops(image_size: int, crop: int, *, train: bool) -> list:
    ops: list = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"ResizeImage": {"size": image_size}}]
    if train:
        ops += [{"RandCropImage": {"size": crop, "scale": [0.5, 1.0]}}, {"RandFlipImage": {"flip_code": 1}}]
    else:
        ops.append({"CropImage": {"size": crop}})
    ops.append({"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "order": ""}})
    return ops


def base_config(data: SyntheticDataset, out: Path, args: argparse.Namespace, *, train_list: Path, seed: int) -> dict:
    """What the three runs share: data, optimiser, schedule, epochs, metrics."""

    def loader(list_file: Path, *, training: bool) -> dict:
        return {
            "dataset": {"name": "ImageNetDataset", "image_root": str(data.root), "cls_label_path": str(list_file),
                        "transform_ops": transform_ops(args.image_size, args.crop, train=training)},
            "sampler": {"name": "DistributedBatchSampler", "batch_size": args.batch_size, "drop_last": False, "shuffle": training},
            "loader": {"num_workers": 0},
        }

    return {
        "Global": {"epochs": args.epochs, "output_dir": str(out), "seed": seed, "device": "cpu",
                   "print_batch_step": 10_000, "eval_during_train": False, "save_interval": args.epochs,
                   "image_shape": [3, args.crop, args.crop], "callbacks": [{"MetricsLog": None}]},
        "Loss": {"Eval": [{"CELoss": None}]},
        "Optimizer": {"name": "Momentum", "momentum": 0.9,
                      "lr": {"name": "Cosine", "learning_rate": args.lr, "warmup_epoch": 1},
                      "regularizer": {"name": "L2", "coeff": 0.0001}},
        "DataLoader": {"Train": loader(train_list, training=True), "Eval": loader(data.val_list, training=False)},
        "Metric": {"Train": [{"TopkAcc": {"topk": [1]}}], "Eval": [{"TopkAcc": {"topk": [1]}}]},
    }


def single(data: SyntheticDataset, out: Path, args: argparse.Namespace, model: str, seed: int) -> dict:
    config = base_config(data, out, args, train_list=data.train_list, seed=seed)
    config["Arch"] = {"name": model, "class_num": data.num_classes}
    config["Loss"]["Train"] = [{"CELoss": None}]
    return config


def distilled(data: SyntheticDataset, out: Path, args: argparse.Namespace, teacher_weights: Path, seed: int) -> dict:
    config = base_config(data, out, args, train_list=data.train_extra_list, seed=seed)
    config["Arch"] = {
        "name": "DistillationModel",
        "class_num": data.num_classes,
        "freeze_params_list": [True, False],
        "infer_model_name": "Student",
        "models": [{"Teacher": {"name": args.teacher, "pretrained": str(teacher_weights)}}, {"Student": {"name": args.student}}],
    }
    config["Loss"]["Train"] = [
        {"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}},  # labeled images only
        {"DistillationDMLLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}},  # every image
    ]
    return config


def fit_and_score(config: dict, registry: corolla.Registry) -> tuple[float, float]:
    """Train, then evaluate the last epoch's weights: (top-1 on val, training minutes)."""
    start = time.perf_counter()
    run = train(read_plan(copy.deepcopy(config), registry), distributed=False)
    minutes = (time.perf_counter() - start) / 60
    config = copy.deepcopy(config)
    config["Global"]["pretrained_model"] = str(run.output_dir / "latest")
    return evaluate_config(read_plan(config, registry))["top1"], minutes


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where data and runs go (default: a temporary folder)")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--labeled", type=int, default=30, help="labeled training images per class")
    parser.add_argument("--val", type=int, default=20, help="validation images per class")
    parser.add_argument("--unlabeled", type=int, default=480, help="unlabeled extra images in all")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--crop", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--teacher", default="ResNet18_vd")
    parser.add_argument("--student", default="PPLCNet_x0_25")
    parser.add_argument("--seeds", default="0,1,2",
                        help="comma-separated; each seed generates its own data set and trains all three")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    started = time.perf_counter()

    runs = (f"teacher {args.teacher}", f"student {args.student} alone", f"student {args.student} distilled (DML)")
    images = dict(zip(runs, ("labeled", "labeled", "labeled + unlabeled")))
    top1s: dict[str, list[float]] = {name: [] for name in runs}
    minutes = 0.0
    with tempfile.TemporaryDirectory(prefix="corolla-distill-") as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        registry = corolla.load_registry()
        for seed in seeds:
            workdir = (args.workdir or Path(scratch)) / f"seed{seed}"
            data = make_data(workdir, args, seed)
            print(f"seed {seed}: {data.num_classes} classes, {data.num_train} labeled + {data.num_extra} unlabeled "
                  f"training images, {data.num_val} validation images, {args.image_size}px (crop {args.crop}); "
                  f"{args.epochs} epochs each", flush=True)
            teacher_weights = workdir / "teacher" / args.teacher / "latest"
            configs = (single(data, workdir / "teacher", args, args.teacher, seed),
                       single(data, workdir / "student", args, args.student, seed),
                       distilled(data, workdir / "distilled", args, teacher_weights, seed))
            for name, config in zip(runs, configs):
                top1, spent = fit_and_score(config, registry)
                print(f"  {name}: top-1 {top1:.4f} ({spent:.1f} min)", flush=True)
                top1s[name].append(top1)
                minutes += spent

    print(f"\n{'run':<44} {'training images':<20} {'mean top-1':>10}   per seed ({args.seeds})")
    for name in runs:
        each = " ".join(f"{value:.4f}" for value in top1s[name])
        print(f"{name:<44} {images[name]:<20} {statistics.mean(top1s[name]):>10.4f}   {each}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(f"training and evaluation: {minutes:.1f} min; wall {time.perf_counter() - started:.0f} s; "
          f"peak memory {peak_mb:.0f} MiB; Paddle {paddle.__version__}; commit {_commit()}")
    return {name: statistics.mean(values) for name, values in top1s.items()}


def _commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def make_data(workdir: Path, args: argparse.Namespace, seed: int) -> SyntheticDataset:
    per_class = args.labeled + args.val
    return make_list_dataset(workdir / "data", num_classes=args.classes, images_per_class=per_class,
                             image_size=args.image_size, val_fraction=args.val / per_class,
                             unlabeled=args.unlabeled, seed=seed)


if __name__ == "__main__":
    main()
