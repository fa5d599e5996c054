"""Training and evaluation speed of corolla's engine beside a minimal plain-Paddle loop.

For PPLCNet_x1_0, MobileNetV3_large_x1_0 and ResNet50_vd at 224x224 on CPU, on the
same generated JPEGs (500x375, like flowers102), the same model (built by corolla's
registry), the same batch and thread count:

- ``corolla``: :func:`corolla.engine.train.train` from a PaddleClas-style config
  (DecodeImage, RandCropImage 224, RandFlipImage, NormalizeImage; Momentum with a
  Cosine schedule, L2 decay, CELoss, TopkAcc), then
  :func:`corolla.engine.evaluate.evaluate` (ResizeImage 256, CropImage 224);
- ``plain``: a ``paddle.io.Dataset`` over the same list file opening images with
  PIL, ``paddle.vision.transforms`` RandomResizedCrop(224), RandomHorizontalFlip,
  ToTensor, Normalize, ``paddle.io.DataLoader`` (num_workers 0), Momentum with
  cosine decay and L2, ``cross_entropy``; evaluation with Resize(256), CenterCrop(224).
  It runs twice: with Paddle's default CPU threads (one: importing Paddle sets
  ``OMP_NUM_THREADS=1``), which is what a minimal loop gets, and with corolla's
  thread count (every core), which leaves only the engine's own overhead.

Speed: the loops run in this process, interleaved step by step (after each
corolla step, one step of each plain loop; the same for evaluation batches), so
that other processes on a shared machine slow all alike. A step's time runs from
the end of the previous loop's step to the end of its own (its data loading
included); images/s is the batch size over the median step time, the first step
(warm-up) left out. Peak memory: the peak RSS of a separate process that runs
one loop alone for a few steps (``--memory-only``). Ratios: corolla over each plain loop.

Run: ``python benchmarks/bench_train.py [--models ...] [--batch 16] [--steps 10] [--eval-batches 6]``.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import paddle
from PIL import Image

import corolla
from corolla.engine.builders import build_metrics, build_model
from corolla.data.placement import cpu_thread_count, set_cpu_threads
from corolla.engine.evaluate import evaluate
from corolla.engine.train import train
from corolla.data.loader import build_dataloader
from corolla.config.planner import read_plan
from corolla.testing.datasets import make_list_dataset

MODELS = ("PPLCNet_x1_0", "MobileNetV3_large_x1_0", "ResNet50_vd")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
NORMALIZE = {"NormalizeImage": {"scale": "1.0/255.0", "mean": MEAN, "std": STD, "order": ""}}


class ListDataset(paddle.io.Dataset):
    """``path label`` lines read with PIL and paddle.vision transforms."""

    def __init__(self, root: Path, list_file: Path, transform: Callable) -> None:
        super().__init__()
        lines = [line.split() for line in list_file.read_text().splitlines()]
        self.items = [(root / path, int(label)) for path, label in lines]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray]:
        path, label = self.items[index]
        return self.transform(Image.open(path).convert("RGB")), np.int64(label)


class PlainLoop:
    """The minimal plain-Paddle loop with ``threads`` CPU threads, one step or one
    evaluation batch at a time (restoring corolla's thread count after each)."""

    def __init__(self, config: dict, registry: corolla.Registry, data: Any, batch: int, threads: int) -> None:
        import paddle.vision.transforms as T

        self.threads = threads
        paddle.seed(1)
        self.model = build_model(read_plan(config, registry))
        self.optimizer = paddle.optimizer.Momentum(
            learning_rate=paddle.optimizer.lr.CosineAnnealingDecay(0.01, T_max=100), momentum=0.9,
            parameters=self.model.parameters(), weight_decay=paddle.regularizer.L2Decay(0.00001))
        normalize = [T.ToTensor(), T.Normalize(mean=MEAN, std=STD)]
        train_set = ListDataset(data.root, data.train_list,
                                T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), *normalize]))
        val_set = ListDataset(data.root, data.val_list, T.Compose([T.Resize(256), T.CenterCrop(224), *normalize]))
        self.train_batches = _forever(lambda: paddle.io.DataLoader(train_set, batch_size=batch, shuffle=True, num_workers=0))
        self.eval_batches = _forever(lambda: paddle.io.DataLoader(val_set, batch_size=batch, num_workers=0))

    def train_step(self) -> None:
        paddle.base.core.set_num_threads(self.threads)
        self.model.train()
        images, labels = next(self.train_batches)
        loss = paddle.nn.functional.cross_entropy(self.model(images), labels.reshape([-1, 1]))
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad()
        self.optimizer._learning_rate.step()
        loss.item()  # the engine reads the loss every step too
        set_cpu_threads()

    @paddle.no_grad()
    def eval_batch(self) -> None:
        paddle.base.core.set_num_threads(self.threads)
        self.model.eval()
        images, _ = next(self.eval_batches)
        self.model(images).numpy()
        set_cpu_threads()


def _forever(make: Callable[[], Any]) -> Iterator[Any]:
    return itertools.chain.from_iterable(make() for _ in itertools.count())


class Clock:
    """Step times of the loops as they take turns."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.times: dict[str, list[float]] = {}

    def lap(self, loop: str) -> None:
        now = time.perf_counter()
        self.times.setdefault(loop, []).append(now - self.last)
        self.last = now

    def rate(self, loop: str, batch: int) -> float:
        return batch / float(np.median(self.times[loop][1:]))


class _Bench:
    """The interleaving: a corolla callback that runs one step of each plain loop after each corolla step."""

    plains: dict[str, PlainLoop] = {}
    clock: Clock | None = None

    class Interleave:
        def corolla_train_start(self, run: Any) -> None:
            _Bench.clock.last = time.perf_counter()

        def corolla_step_end(self, run: Any, epoch: int, step: int, logs: Any) -> None:
            _Bench.clock.lap("corolla")
            for name, plain in _Bench.plains.items():
                plain.train_step()
                _Bench.clock.lap(name)

    @staticmethod
    def corolla_callbacks() -> dict:
        return {"Interleave": _Bench.Interleave}


def interleaved_eval(batches: Any, plains: dict[str, PlainLoop], clock: Clock) -> Iterator[Any]:
    clock.last = time.perf_counter()
    for item in batches:
        yield item
        clock.lap("corolla")
        for name, plain in plains.items():
            plain.eval_batch()
            clock.lap(name)


def config_for(model: str, data: Any, out: Path, batch: int) -> dict:
    def section(list_file: Path, ops: list) -> dict:
        return {"dataset": {"name": "ImageNetDataset", "image_root": str(data.root), "cls_label_path": str(list_file),
                            "transform_ops": [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, *ops, NORMALIZE]},
                "sampler": {"name": "DistributedBatchSampler", "batch_size": batch, "drop_last": False, "shuffle": True},
                "loader": {"num_workers": 0}}

    return {
        "Global": {"epochs": 1, "output_dir": str(out), "device": "cpu", "seed": 1, "eval_during_train": False,
                   "save_interval": 100, "print_batch_step": 1000, "callbacks": [{"Interleave": None}]},
        "Arch": {"name": model, "class_num": data.num_classes},
        "Loss": {"Train": [{"CELoss": {"weight": 1.0}}]},
        "Optimizer": {"name": "Momentum", "momentum": 0.9, "lr": {"name": "Cosine", "learning_rate": 0.01},
                      "regularizer": {"name": "L2", "coeff": 0.00001}},
        "DataLoader": {
            "Train": section(data.train_list, [{"RandCropImage": {"size": 224}}, {"RandFlipImage": {"flip_code": 1}}]),
            "Eval": section(data.val_list, [{"ResizeImage": {"resize_short": 256}}, {"CropImage": {"size": 224}}]),
        },
        "Metric": {"Train": [{"TopkAcc": {"topk": [1, 5]}}], "Eval": [{"TopkAcc": {"topk": [1, 5]}}]},
    }


def dataset(root: Path, batch: int, steps: int, eval_batches: int) -> Any:
    total = batch * (steps + eval_batches)
    return make_list_dataset(root, num_classes=4, images_per_class=math.ceil(total / 4), image_size=(500, 375),
                             val_fraction=eval_batches / (steps + eval_batches), seed=0)


def speeds(model: str, registry: corolla.Registry, data: Any, out: Path, batch: int,
           loops: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Training and evaluation images/s of corolla and of the plain loops (name -> threads), interleaved."""
    config = config_for(model, data, out, batch)
    _Bench.plains = {name: PlainLoop(config, registry, data, batch, threads) for name, threads in loops.items()}
    _Bench.clock = Clock()
    plan = read_plan(copy.deepcopy(config), registry)
    run = train(plan, distributed=False)
    train_clock, _Bench.clock = _Bench.clock, Clock()
    evaluate(run.model, interleaved_eval(eval_loader(plan), _Bench.plains, _Bench.clock),
             metrics=build_metrics(plan, "Eval"), show_progress=False)
    return {loop: (train_clock.rate(loop, batch), _Bench.clock.rate(loop, batch)) for loop in ["corolla", *loops]}


def eval_loader(plan: Any) -> Any:
    """The ``DataLoader.Eval`` loader of the plan, seeded, in this process."""
    return build_dataloader(plan.loaders["Eval"], plan.registry, class_num=plan.model.class_num, seed=1, rank=0,
                            world_size=1, image_shape=plan.settings.image_shape)


def memory_only(loop: str, model: str, batch: int) -> None:
    """Run one loop alone for three steps and an evaluation batch; print the peak RSS in MB."""
    registry = corolla.load_registry(extra_plugins=[("bench", _Bench)])
    set_cpu_threads()
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(Path(tmp) / "data", batch, 3, 1)
        config = config_for(model, data, Path(tmp) / "out", batch)
        if loop == "plain":
            plain = PlainLoop(config, registry, data, batch, cpu_thread_count())
            for _ in range(3):
                plain.train_step()
            plain.eval_batch()
        else:
            _Bench.clock = Clock()
            plan = read_plan(config, registry)
            run = train(plan, distributed=False)
            evaluate(run.model, eval_loader(plan), metrics=build_metrics(plan, "Eval"), show_progress=False)
    print(_high_water_mb())


def _high_water_mb() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it does not inherit the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_mb(loop: str, model: str, batch: int) -> float:
    done = subprocess.run([sys.executable, __file__, "--memory-only", loop, "--models", model, "--batch", str(batch)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="training steps per loop (the first is warm-up)")
    parser.add_argument("--eval-batches", type=int, default=6)
    parser.add_argument("--memory-only", choices=["plain", "corolla"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_only:
        return memory_only(args.memory_only, args.models[0], args.batch)
    registry = corolla.load_registry(extra_plugins=[("bench", _Bench)])
    threads = set_cpu_threads()
    print(f"paddle {paddle.__version__}, {threads} CPU threads, batch {args.batch}, {args.steps} training steps "
          f"and {args.eval_batches} evaluation batches per loop, interleaved")
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(Path(tmp) / "data", args.batch, args.steps, args.eval_batches)
        loops = {"plain (1 thread)": 1, f"plain ({threads} threads)": threads}
        header = f"{'model':<24}{'loop':<28}{'train img/s':>12}{'eval img/s':>12}{'peak RSS MB':>13}"
        print(header + "\n" + "-" * len(header))
        for model in args.models:
            rates = speeds(model, registry, data, Path(tmp) / "out", args.batch, loops)
            memory = {"corolla": peak_mb("corolla", model, args.batch), "plain": peak_mb("plain", model, args.batch)}
            for loop, (t, e) in rates.items():
                print(f"{model:<24}{loop:<28}{t:>12.2f}{e:>12.2f}{memory[loop.split()[0]]:>13.0f}")
            for name in loops:
                ratio = [rates["corolla"][i] / rates[name][i] for i in (0, 1)] + [memory["corolla"] / memory["plain"]]
                print(f"{model:<24}{'corolla / ' + name:<28}{ratio[0]:>12.2f}{ratio[1]:>12.2f}{ratio[2]:>13.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
