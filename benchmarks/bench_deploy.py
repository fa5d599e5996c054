"""Deployment latency on CPU: one model, four ways to run it, in one process.

Per model (PPLCNet_x1_0, MobileNetV3_large_x1_0, ResNet50_vd; 1000 classes, 224x224) and
batch size (1 and 8): the latency of

- ``dygraph``: the model in Paddle's dynamic graph (what ``corolla infer`` runs);
- ``paddle+onednn``: the exported program in Paddle Inference with oneDNN (``corolla predict``);
- ``paddle``: the same program in Paddle Inference without oneDNN (Paddle's native CPU kernels);
- ``onnxruntime``: the exported ``inference.onnx`` in ONNX Runtime (``predict --backend onnxruntime``);

and the size of each export. The export is the one ``corolla export --format all`` writes
(the same tracing, the same paddle2onnx conversion; softmax included). Every engine uses the
same thread count. The engines run interleaved, one batch each per round, so that other
processes on a shared machine slow them alike, each after a pause of :data:`PAUSE_S` (the
OpenMP threads of the engine before spin for 200 ms after their work, which would slow the
next one); the latency is the median over the rounds, after two warm-up rounds. Each
engine's output is compared with dygraph's.

Run: ``python benchmarks/bench_deploy.py [--models ...] [--batches 1 8] [--rounds 15] [--threads N]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import paddle

import corolla
from corolla.data.placement import cpu_thread_count
from corolla.engine.export import ExportedModel
from corolla.engine.onnx_convert import convert
from corolla.engine.runtimes import MODEL_PREFIX, ONNX_NAME, OnnxRuntime, PaddleRuntime, program_file, save_program

MODELS = ("PPLCNet_x1_0", "MobileNetV3_large_x1_0", "ResNet50_vd")
ENGINES = ("dygraph", "paddle+onednn", "paddle", "onnxruntime")
PAUSE_S = 0.3


def calibrated(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """The model with its BatchNorm statistics taken from a batch (fresh ones give degenerate outputs)."""
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.layer.norm._BatchNormBase):
            layer._momentum = 0.0
    model.train()
    with paddle.no_grad():
        model(paddle.to_tensor(np.random.default_rng(0).standard_normal((4, 3, 224, 224), dtype=np.float32)))
    model.eval()
    return model


def engines(name: str, folder: Path, threads: int) -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], dict[str, float]]:
    """The four ways to run ``name`` (exported into ``folder``), and the export sizes in MB."""
    exported = ExportedModel(calibrated(corolla.load_registry().build("backbone", name)), "softmax")
    exported.eval()
    save_program(exported, folder / MODEL_PREFIX, [3, 224, 224])
    convert(folder)
    sizes = {"paddle": sum(p.stat().st_size for p in (program_file(folder), folder / f"{MODEL_PREFIX}.pdiparams")) / 1e6,
             "onnx": (folder / ONNX_NAME).stat().st_size / 1e6}

    @paddle.no_grad()
    def dygraph(images: np.ndarray) -> np.ndarray:
        paddle.base.core.set_num_threads(threads)  # a predictor may have changed it
        return exported(paddle.to_tensor(images)).numpy()

    with_onednn = PaddleRuntime(folder, threads=threads)
    native = PaddleRuntime(folder, threads=threads, onednn=False)
    onnx = OnnxRuntime(folder, threads=threads)
    return {"dygraph": dygraph, "paddle+onednn": lambda x: with_onednn.run(x)[0], "paddle": lambda x: native.run(x)[0],
            "onnxruntime": lambda x: onnx.run(x)[0]}, sizes


def measure(runs: dict[str, Callable[[np.ndarray], np.ndarray]], batch: int, rounds: int) -> tuple[dict, dict]:
    """Median milliseconds per batch of each engine, and its largest difference from dygraph."""
    images = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    times: dict[str, list[float]] = {engine: [] for engine in runs}
    outputs = {}
    for index in range(rounds + 2):
        for engine, run in runs.items():
            time.sleep(PAUSE_S)
            started = time.perf_counter()
            outputs[engine] = run(images)
            if index >= 2:
                times[engine].append(time.perf_counter() - started)
    gaps = {engine: float(np.abs(out - outputs["dygraph"]).max()) for engine, out in outputs.items()}
    return {engine: 1000 * statistics.median(t) for engine, t in times.items()}, gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=cpu_thread_count())
    args = parser.parse_args()
    paddle.base.core.set_num_threads(args.threads)
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")),
               platform.processor())
    print(f"{cpu}, {len(os.sched_getaffinity(0))} cores, {args.threads} threads per engine, Paddle {paddle.__version__}; "
          f"load average {os.getloadavg()[0]:.1f} at start\n")
    header = ["model", "batch", *(f"{e} ms" for e in ENGINES), "oneDNN vs dygraph", "Paddle MB", "ONNX MB", "max |diff|"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.models:
        with tempfile.TemporaryDirectory(prefix="bench-deploy-") as folder:
            runs, sizes = engines(name, Path(folder), args.threads)
            for batch in args.batches:
                ms, gaps = measure(runs, batch, args.rounds)
                cells = [name, str(batch), *(f"{ms[e]:.1f}" for e in ENGINES), f"{ms['dygraph'] / ms['paddle+onednn']:.1f}x",
                         f"{sizes['paddle']:.1f}", f"{sizes['onnx']:.1f}", f"{max(gaps.values()):.1e}"]
                print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
