"""``corolla quickstart``: the main job, offline, in a few minutes on a laptop CPU.

Generates a small real-looking image dataset (:mod:`corolla.testing.images`), trains
the small backbone of the shipped ``configs/quickstart.yaml`` on it, evaluates
the best checkpoint, exports it, predicts two validation images with the
exported model, and says where the curves, logs and model are.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from corolla.cli.common import registry_from_args
from corolla.config.load import load_config, shipped_configs
from corolla.config.planner import read_plan

#: the shipped config of the main job
CONFIG = shipped_configs() / "quickstart.yaml"
#: the dataset it trains on: classes, images per class (a quarter for validation), pixels
DATASET = {"num_classes": 6, "images_per_class": 100, "image_size": 80, "seed": 0}


def overrides(workdir: Path) -> list[str]:
    """Point the shipped config at ``workdir``."""
    data, out = workdir / "data", workdir / "output"
    return [
        f"Global.output_dir={out}",
        f"Global.save_inference_dir={workdir / 'inference'}",
        f"DataLoader.Train.dataset.image_root={data}",
        f"DataLoader.Train.dataset.cls_label_path={data / 'train_list.txt'}",
        f"DataLoader.Eval.dataset.image_root={data}",
        f"DataLoader.Eval.dataset.cls_label_path={data / 'val_list.txt'}",
        f"Infer.infer_imgs={data / 'images'}",
        f"Infer.PostProcess.class_id_map_file={data / 'label_list.txt'}",
    ]


def run(args: argparse.Namespace) -> int:
    from corolla.engine.evaluate import evaluate_config
    from corolla.engine.export import export
    from corolla.engine.formatting import format_values
    from corolla.engine.predict import Predictor
    from corolla.engine.train import train
    from corolla.testing.datasets import make_list_dataset

    started = time.perf_counter()
    workdir = Path(args.workdir).resolve()
    print(f"[1/5] generating a {DATASET['num_classes']}-class image dataset in {workdir / 'data'}", flush=True)
    dataset = make_list_dataset(workdir / "data", **DATASET)

    config = load_config(CONFIG, overrides(workdir) + args.override)
    registry = registry_from_args(args, config)
    plan = read_plan(config, registry)
    print(f"[2/5] training {plan.model.part.name} on {dataset.num_train} images, "
          f"{plan.settings.epochs} epochs (config: {CONFIG})", flush=True)
    trained = train(plan, overwrite=True)  # a quickstart run again keeps the previous one aside

    best = trained.output_dir / "best_model"
    plan = read_plan(load_config(CONFIG, overrides(workdir) + args.override + [f"Global.pretrained_model={best}"]), registry)
    print(f"[3/5] evaluating {best}", flush=True)
    results = evaluate_config(plan)
    print(f"      {format_values(results)}", flush=True)

    print(f"[4/5] exporting to {plan.settings.save_inference_dir}", flush=True)
    model_dir = export(plan)

    val_images = [line.split()[0] for line in dataset.val_list.read_text().splitlines()]
    samples = [dataset.root / val_images[0], dataset.root / val_images[-1]]
    print("[5/5] predicting two validation images with Paddle Inference", flush=True)
    for prediction in Predictor(model_dir, registry)(samples):
        print("      " + prediction.line(), flush=True)

    minutes = (time.perf_counter() - started) / 60
    print(f"\ndone in {minutes:.1f} min. Top-1 on the validation set: {results.get('top1', float('nan')):.3f}")
    print(f"  curves:      {trained.output_dir / 'curves.png'}")
    print(f"  metrics log: {trained.output_dir / 'metrics.jsonl'}")
    print(f"  run record:  {trained.output_dir / 'manifest.json'}")
    print(f"  checkpoints: {trained.output_dir} (best_model, latest, epoch_N)")
    print(f"  exported:    {model_dir}")
    print(f"predict other images: corolla predict -c {CONFIG} -o Global.save_inference_dir={model_dir} "
          f"-o Infer.infer_imgs=IMAGE_OR_FOLDER")
    return 0
