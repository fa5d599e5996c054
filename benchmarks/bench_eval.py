"""``corolla eval`` on CPU: dygraph beside ``Global.eval_engine: auto`` (through ONNX Runtime
where the onnx extra is installed, else Paddle Inference with oneDNN, where it pays off), and with
``--before PYTHON`` the ``corolla eval`` of an older checkout (the baseline of issue 17).

PPLCNet_x1_0 (4 classes, BatchNorm statistics taken from a batch so that its logits
are not degenerate) on generated 500x375 JPEGs (like flowers102), PaddleClas's eval
preprocessing (ResizeImage resize_short 256, CropImage 224, NormalizeImage), batch 16,
``num_workers: 0`` (``--workers``). Each run is a separate ``corolla eval`` process; the engines alternate
(dygraph, auto with an empty graph cache, auto with the graph that run kept, dygraph, ...) so that each
round runs in the same minute on a shared machine. "auto (cold)" traces and converts the network;
"auto (cached)" is a later evaluation of the same network (another checkpoint, another
``corolla eval``), which restores the graph from :mod:`corolla.engine.graph_cache`. Reported per
run: the images/s ``corolla eval`` prints (the evaluation loop, data loading and, for auto, the
trace or restore included), the command's wall time, and its metrics, which must be the same for
every engine.

``--breakdown`` adds, in this process: the loader alone, the traced model alone under Paddle
Inference (oneDNN) and ONNX Runtime (idle threads sleeping, as evaluation runs it), each engine
together with the loader as evaluation runs them, and dygraph alone, each in images/s with 2
threads per engine: what bounds the evaluation.

Run: ``python benchmarks/bench_eval.py [--images 1024] [--pairs 2] [--model PPLCNet_x1_0] [--breakdown]
[--before PYTHON]`` (``--pairs``: rounds).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

NORMALIZE = {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                "order": ""}}


def make_config(root: Path, model: str, images: int, batch: int, workers: int = 0) -> Path:
    """A dataset of ``images`` validation JPEGs, calibrated weights and the eval config; the config's path."""
    import paddle

    import corolla
    from corolla.engine.files import write_checkpoint
    from corolla.testing.datasets import make_list_dataset

    data = make_list_dataset(root / "data", num_classes=4, images_per_class=-(-images // 4), image_size=(500, 375),
                             val_fraction=0.0, seed=0)
    net = corolla.load_registry().build("backbone", model, {"class_num": 4})
    for layer in net.sublayers():
        if isinstance(layer, paddle.nn.layer.norm._BatchNormBase):
            layer._momentum = 0.0  # running statistics := this batch's
    net.train()
    with paddle.no_grad():
        net(paddle.to_tensor(np.random.default_rng(0).standard_normal((8, 3, 224, 224), dtype=np.float32)))
    write_checkpoint(root / "weights", {".pdparams": {k: v.numpy() for k, v in net.state_dict().items()}})
    config = {
        "Global": {"device": "cpu", "pretrained_model": str(root / "weights"), "output_dir": str(root / "out")},
        "Arch": {"name": model, "class_num": 4},
        "Loss": {"Eval": [{"CELoss": {"weight": 1.0}}]},
        "Metric": {"Eval": [{"TopkAcc": {"topk": [1, 2]}}]},
        "DataLoader": {"Eval": {
            "dataset": {"name": "ImageNetDataset", "image_root": str(data.root), "cls_label_path": str(data.train_list),
                        "transform_ops": [{"DecodeImage": {"to_rgb": True, "channel_first": False}},
                                          {"ResizeImage": {"resize_short": 256}}, {"CropImage": {"size": 224}},
                                          NORMALIZE]},
            "sampler": {"name": "DistributedBatchSampler", "batch_size": batch, "drop_last": False, "shuffle": False},
            "loader": {"num_workers": workers}}},
    }
    path = root / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_eval(config: Path, engine: str, python: str = sys.executable, graphs: Path | None = None) -> dict:
    """One ``corolla eval`` process (of the corolla that ``python`` imports; ``engine`` "before":
    without ``--eval-engine``; ``graphs``: the graph cache folder): its printed metrics and images/s, and its wall time."""
    started = time.perf_counter()
    command = [python, "-m", "corolla", "eval", "-c", str(config)]
    command += [] if engine == "before" else ["--eval-engine", engine.split()[0]]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COROLLA_GRAPH_CACHE": str(graphs) if graphs else "off"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    line = next((l for l in done.stdout.splitlines() if l.startswith("[Eval]")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"corolla eval --eval-engine {engine} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    values = dict(re.findall(r"(\w[\w/]*): ([0-9.]+)", line))
    return {"engine": engine, "wall_s": wall, "images_per_sec": float(values.pop("images/s")),
            "metrics": {k: float(v) for k, v in values.items()}, "at": time.strftime("%H:%M:%S")}


def breakdown(config: Path, model: str, batch: int) -> None:
    """Print images/s of the loader alone, the inference engine alone, both as evaluation runs
    them (load a batch, then run it), and dygraph alone."""
    import paddle

    import corolla
    from corolla.config.load import load_config
    from corolla.config.planner import read_plan
    from corolla.data.loader import build_dataloader
    from corolla.engine.onnx_convert import convert
    from corolla.engine.runtimes import MODEL_PREFIX, OnnxRuntime, PaddleRuntime, traced

    registry = corolla.load_registry()
    plan = read_plan(load_config(config), registry)
    loader = build_dataloader(plan.loaders["Eval"], registry, class_num=4, seed=0, rank=0, world_size=1)
    net = registry.build("backbone", model, {"class_num": 4})
    net.eval()
    images = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)

    def rate(step: Callable[[], int], repeats: int = 1) -> float:
        started, count = time.perf_counter(), 0
        for _ in range(repeats):
            count += step()
        return count / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory(prefix="bench-eval-trace-") as folder:
        paddle.jit.save(traced(net, (3, 224, 224)), str(Path(folder) / MODEL_PREFIX))
        convert(Path(folder))
        figures = {"loader alone": rate(lambda: sum(int(x.shape[0]) for x, _ in loader))}
        engines = {"Paddle Inference": PaddleRuntime(Path(folder), threads=2),
                   "ONNX Runtime": OnnxRuntime(Path(folder), threads=2, spin_wait=False)}
        for name, engine in engines.items():
            engine.run(images)
            figures[f"{name} alone"] = rate(lambda: len(engine.run(images)[0]), repeats=20)
            figures[f"loader + {name}"] = rate(lambda: sum(len(engine.run(x.numpy())[0]) for x, _ in loader))
    paddle.base.core.set_num_threads(2)
    tensor = paddle.to_tensor(images)
    with paddle.no_grad():
        net(tensor)
        figures["dygraph alone"] = rate(lambda: int(net(tensor).shape[0]), repeats=4)
    print(f"breakdown, images/s (batch {batch}):")
    for name, value in figures.items():
        print(f"  {name:30s} {value:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="PPLCNet_x1_0")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=2, help="rounds of every engine")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader.Eval.loader.num_workers")
    parser.add_argument("--breakdown", action="store_true", help="also time the loader and the engines alone")
    parser.add_argument("--before", metavar="PYTHON", help="also run `corolla eval` of the corolla this Python "
                        "imports (a checkout of ee53934: corolla when issue 17 was filed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as folder:
        config = make_config(Path(folder), args.model, args.images, args.batch, args.workers)
        print(f"{args.model}, {args.images} images, batch {args.batch}, {args.workers} loader workers, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
        runs = []
        engines = ("before",) * bool(args.before) + ("dygraph", "auto (cold)", "auto (cached)")
        for round_ in range(args.pairs):
            graphs = Path(folder) / f"graphs{round_}"  # empty for the cold run, then holding its graph
            for engine in engines:
                python = args.before if engine == "before" else sys.executable
                runs.append(run_eval(config, engine, python, graphs if engine.startswith("auto") else None))
                r = runs[-1]
                print(f"  {r['at']} {engine:13s} images/s {r['images_per_sec']:7.1f}  wall {r['wall_s']:6.1f} s  "
                      f"{', '.join(f'{k} {v:.4f}' for k, v in r['metrics'].items())}", flush=True)
        if args.breakdown:
            breakdown(config, args.model, args.batch)
    same = all(r["metrics"] == runs[0]["metrics"] for r in runs)
    rate = {e: statistics.median(r["images_per_sec"] for r in runs if r["engine"] == e) for e in engines}
    wall = {e: statistics.median(r["wall_s"] for r in runs if r["engine"] == e) for e in engines}
    base = engines[0]
    print("median images/s: " + ", ".join(f"{e} {rate[e]:.1f} ({rate[e] / rate[base]:.1f}x)" for e in engines)
          + "; median wall: " + ", ".join(f"{e} {wall[e]:.1f} s ({wall[base] / wall[e]:.1f}x)" for e in engines)
          + f"; metrics {'identical' if same else 'DIFFER'}; load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
