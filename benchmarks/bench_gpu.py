"""GPU training throughput: per model, the ceiling and corolla end to end, eager and compiled.

For ResNet50_vd (batch 128), PPLCNet_x1_0 and MobileNetV3_large_x1_0 (batch 256), 224x224,
fp32, Momentum with a cosine schedule and L2 decay, CELoss, 1000 classes (as PaddleClas's
ImageNet configs), the dropout heads off (``dropout`` has no kernel on the H100 with Paddle
2.6.2, so the anchors below were taken without it):

- ``ceiling``: a random batch already on the GPU, the model, loss and optimizer that corolla
  builds from the same config, nothing else in the loop (the GPU's limit for that model);
  ``ceiling static``: the same through corolla's compiled step (``Global.to_static``);
- ``loader``: corolla's training loader alone, batches finished on the GPU, no model;
- ``corolla`` / ``corolla static``: ``corolla.engine.train.train`` from 448x448 JPEG files this
  script writes (DecodeImage, RandCropImage 224, RandFlipImage, NormalizeImage; Metric.Train
  TopkAcc; loader defaults: ``num_workers: auto``, ``device_transforms: auto``);
- ``ratio``: the better corolla figure over the better ceiling (the issue's goal: 0.9).

Timing: images/s over a window of steps after warm-up steps (compilation, worker start,
cuDNN's algorithm search); ceilings synchronise the GPU at the window's ends, end-to-end
windows start and end on logging steps, where the engine reads the loss (which waits for
the GPU). The list file repeats 512 generated images (about 40 KiB each), so decoding is
real and the files are in the page cache, as for a warm dataset.

Run on a GPU (../shared/gpu/README.md: the kit carries Paddle 2.6.2 to a machine without
Paddle; benchmarks/gpu_session.sh runs this)::

    python3 benchmarks/bench_gpu.py --out bench_gpu.json [--models ResNet50_vd] [--workers 12]

``--dry-run``: the same on the CPU with tiny sizes, to check the script.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import attrs

MODELS = {"ResNet50_vd": 128, "PPLCNet_x1_0": 256, "MobileNetV3_large_x1_0": 256}
NO_DROPOUT = {"PPLCNet_x1_0": {"dropout_prob": 0.0}, "MobileNetV3_large_x1_0": {"dropout_prob": 0.0}}
#: ../shared/gpu/README.md, an H100 with Paddle 2.6.2 (fp32 images/s): ceiling, ceiling under
#: to_static, PaddleClas 2.6 end to end from 448 px JPEGs (14 workers)
ANCHORS = {"ResNet50_vd": (1493, 1188, 745), "PPLCNet_x1_0": (3351, 5094, 708), "MobileNetV3_large_x1_0": (1802, 2426, None)}
GOALS = {"ResNet50_vd": 1340, "PPLCNet_x1_0": 4580}  # 90 % of the better anchor ceiling (issue 16)
NORMALIZE = {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                "order": ""}}


@attrs.define
class Sizes:
    """How much each measurement runs; end-to-end steps are multiples of the logging interval."""

    device: str = "gpu"
    image: int = 448
    crop: int = 224
    distinct_images: int = 512
    ceiling_warmup: int = 10
    ceiling_steps: int = 20
    e2e_warmup: int = 20
    e2e_steps: int = 30
    print_step: int = 10
    batch_scale: float = 1.0


DRY_RUN = Sizes(device="cpu", image=64, crop=32, distinct_images=16, ceiling_warmup=1, ceiling_steps=2,
                e2e_warmup=2, e2e_steps=2, print_step=1, batch_scale=4 / 256)


class StepClock:
    """A callback: the time at the end of every training step of the run."""

    times: list[float] = []

    def corolla_train_start(self, run: Any) -> None:
        StepClock.times = []

    def corolla_step_end(self, run: Any, epoch: int, step: int, logs: Any) -> None:
        StepClock.times.append(time.perf_counter())


def corolla_callbacks() -> dict:
    return {"StepClock": StepClock}


def config_for(model: str, batch: int, data: Any, list_file: Path, out: Path, sizes: Sizes, *, to_static: bool,
               workers: Any, device_transforms: Any, amp: str | None) -> dict:
    """A PaddleClas-style ImageNet training config for ``model`` on the generated files."""
    ops = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"RandCropImage": {"size": sizes.crop}},
           {"RandFlipImage": {"flip_code": 1}}, NORMALIZE]
    config = {
        "Global": {"epochs": 1, "output_dir": str(out), "device": sizes.device, "seed": 1, "eval_during_train": False,
                   "print_batch_step": sizes.print_step, "save_interval": 1, "to_static": to_static,
                   "image_shape": [3, sizes.crop, sizes.crop],
                   "callbacks": [{"ConsoleLogger": {"progress_bar": False}}, {"StepClock": None}]},
        "Arch": {"name": model, "class_num": 1000, **NO_DROPOUT.get(model, {})},
        "Loss": {"Train": [{"CELoss": {"weight": 1.0}}]},
        "Optimizer": {"name": "Momentum", "momentum": 0.9, "lr": {"name": "Cosine", "learning_rate": 0.1},
                      "regularizer": {"name": "L2", "coeff": 0.00003}},
        "DataLoader": {"Train": {
            "dataset": {"name": "ImageNetDataset", "image_root": str(data.root), "cls_label_path": str(list_file),
                        "transform_ops": ops},
            "sampler": {"name": "DistributedBatchSampler", "batch_size": batch, "drop_last": True, "shuffle": True},
            "loader": {"num_workers": workers, "use_shared_memory": True, "device_transforms": device_transforms}}},
        "Metric": {"Train": [{"TopkAcc": {"topk": [1, 5]}}]},
    }
    if amp:
        config["AMP"] = {"dtype": amp, "level": "O1"}
    return config


def synchronize(device: str) -> None:
    import paddle

    if device == "gpu":
        paddle.device.cuda.synchronize()


def ceiling(plan: Any, batch: int, sizes: Sizes, *, to_static: bool) -> float:
    """Training images/s with a random batch already on the device: only the model's work."""
    import numpy as np
    import paddle

    from corolla.engine.builders import Trainable, build_model, build_optimizer
    from corolla.engine.loss import build_loss
    from corolla.engine.precision import Precision
    from corolla.engine.train_step import TrainStep

    model = build_model(plan)
    loss = build_loss(plan.losses["Train"], plan.registry, "Loss.Train")
    optimizer, _ = build_optimizer(plan, Trainable(model, loss), epochs=1, steps_per_epoch=1000)
    precision = Precision(plan.amp, sizes.device)
    model, optimizer = precision.decorate(model, optimizer)
    step = TrainStep(model, loss, to_static=to_static, distributed=False)
    rng = np.random.default_rng(0)
    images = paddle.to_tensor(rng.normal(size=(batch, 3, sizes.crop, sizes.crop)).astype("float32"))
    labels = paddle.to_tensor(rng.integers(0, 1000, size=batch).astype("int64"))
    model.train()

    def one() -> None:
        with precision.autocast():
            _, losses = step(images, labels)
        precision.backward(losses["loss"])
        precision.step(optimizer)

    for _ in range(sizes.ceiling_warmup):
        one()
    synchronize(sizes.device)
    start = time.perf_counter()
    for _ in range(sizes.ceiling_steps):
        one()
    synchronize(sizes.device)
    return batch * sizes.ceiling_steps / (time.perf_counter() - start)


def loader_rate(plan: Any, batch: int, sizes: Sizes) -> tuple[float, int]:
    """Images/s of the training loader alone (batches finished where training would get them), and its workers."""
    from corolla.data.loader import build_dataloader

    loader = build_dataloader(plan.loaders["Train"], plan.registry, class_num=1000, seed=1, rank=0, world_size=1,
                              image_shape=plan.settings.image_shape, device=sizes.device)
    count = sizes.e2e_warmup + sizes.e2e_steps
    start = 0.0
    for index, (images, _) in enumerate(loader, start=1):
        if index == sizes.e2e_warmup:
            synchronize(sizes.device)
            start = time.perf_counter()
        if index == count:
            synchronize(sizes.device)
            break
    return batch * sizes.e2e_steps / (time.perf_counter() - start), loader.num_workers


def end_to_end(config: dict, registry: Any, batch: int, sizes: Sizes) -> float:
    """Training images/s of ``corolla.engine.train.train`` over steps warmup..warmup+steps."""
    from corolla.config.planner import read_plan
    from corolla.engine.train import train

    train(read_plan(copy.deepcopy(config), registry), distributed=False)
    times = StepClock.times
    first, last = sizes.e2e_warmup, sizes.e2e_warmup + sizes.e2e_steps
    return batch * sizes.e2e_steps / (times[last - 1] - times[first - 1])


def release(device: str) -> None:
    import paddle

    gc.collect()
    if device == "gpu":
        paddle.device.cuda.empty_cache()


def describe_machine(device: str, workers: Any) -> dict:
    import paddle

    info = {"paddle": paddle.__version__, "python": platform.python_version(), "cpu_cores": len(os.sched_getaffinity(0)),
            "device": device, "workers_setting": workers}
    if device == "gpu":
        info.update(gpu=paddle.device.cuda.get_device_name(0), cuda=paddle.version.cuda(), cudnn=paddle.version.cudnn())
    return info


def measure(model: str, batch: int, data: Any, list_file: Path, out: Path, registry: Any, sizes: Sizes,
            args: argparse.Namespace, say: Callable[[str], None]) -> dict:
    from corolla.config.planner import read_plan

    def config(to_static: bool) -> dict:
        return config_for(model, batch, data, list_file, out / f"{model}_{to_static}", sizes, to_static=to_static,
                          workers=args.workers, device_transforms=args.device_transforms, amp=args.amp)

    row: dict[str, Any] = {"model": model, "batch": batch}
    plan = read_plan(config(False), registry)
    for name, static in (("ceiling", False), ("ceiling_static", True)):
        row[name] = ceiling(plan, batch, sizes, to_static=static)
        release(sizes.device)
        say(f"{model}: {name} {row[name]:.0f} images/s")
    row["loader"], row["workers"] = loader_rate(plan, batch, sizes)
    say(f"{model}: loader alone {row['loader']:.0f} images/s with {row['workers']} workers")
    for name, static in (("corolla", False), ("corolla_static", True)):
        row[name] = end_to_end(config(static), registry, batch, sizes)
        release(sizes.device)
        say(f"{model}: {name} {row[name]:.0f} images/s")
    row["ratio"] = max(row["corolla"], row["corolla_static"]) / max(row["ceiling"], row["ceiling_static"])
    row["goal"] = GOALS.get(model)
    row["anchors_ceiling_ceiling_static_paddleclas448"] = ANCHORS.get(model)
    return row


def table(rows: list[dict]) -> str:
    head = (f"{'model':<24}{'batch':>6}{'ceiling':>9}{'static':>8}{'loader':>8}{'workers':>8}{'corolla':>9}"
            f"{'static':>8}{'ratio':>7}{'goal':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['model']:<24}{r['batch']:>6}{r['ceiling']:>9.0f}{r['ceiling_static']:>8.0f}{r['loader']:>8.0f}"
                     f"{r['workers']:>8}{r['corolla']:>9.0f}{r['corolla_static']:>8.0f}{r['ratio']:>7.2f}"
                     f"{r['goal'] or '-':>6}")
    return "\n".join(lines)


def run_all(work: Path, registry: Any, sizes: Sizes, args: argparse.Namespace) -> list[dict]:
    """Generate the JPEGs, then measure each model (the JSON written after each)."""
    from corolla.testing.datasets import make_list_dataset

    per_class = max(1, sizes.distinct_images // 8)
    data = make_list_dataset(work / "data", num_classes=8, images_per_class=per_class, image_size=sizes.image,
                             val_fraction=0.0, seed=0)
    lines = data.train_list.read_text().splitlines()
    results = {"machine": describe_machine(sizes.device, args.workers), "sizes": attrs.asdict(sizes), "rows": []}

    def say(line: str) -> None:
        print(f"[bench_gpu] {line}", flush=True)

    say(f"{len(lines)} JPEGs of {sizes.image}x{sizes.image} in {work}; {results['machine']}")
    for model in args.models:
        batch = max(2, round(MODELS[model] * sizes.batch_scale))
        needed = batch * (sizes.e2e_warmup + sizes.e2e_steps + 1)
        list_file = work / f"list_{batch}.txt"
        list_file.write_text("\n".join(lines[i % len(lines)] for i in range(needed)) + "\n")
        results["rows"].append(measure(model, batch, data, list_file, work / "out", registry, sizes, args, say))
        if args.out:  # after each model, so that a run cut short keeps what it measured
            args.out.write_text(json.dumps(results, indent=2))
    return results["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--workers", default="auto", help="loader.num_workers (default: auto)")
    parser.add_argument("--device-transforms", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--amp", choices=["bfloat16", "float16"], help="AMP dtype (default: fp32)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check the script")
    args = parser.parse_args()
    args.workers = int(args.workers) if args.workers.isdigit() else args.workers
    args.device_transforms = {"true": True, "false": False}.get(args.device_transforms, "auto")
    sizes = DRY_RUN if args.dry_run else Sizes()

    import corolla

    registry = corolla.load_registry(extra_plugins=[("bench_gpu", sys.modules[__name__])])
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as folder:
        rows = run_all(Path(folder), registry, sizes, args)
    print(table(rows))


if __name__ == "__main__":
    main()
