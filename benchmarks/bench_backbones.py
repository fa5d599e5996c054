"""Forward latency of corolla's backbones against PaddleClas 2.6's implementation of the same name.

Per model and batch size: eval mode, ``paddle.no_grad``, 224x224 float32 input,
CPU, both models in this process with the same weights (PaddleClas's state dict
copied into corolla's). After warm-up runs, the two are timed alternately
(which goes first alternates too) for ``--repeats`` rounds. The table shows the
median wall-clock milliseconds of each, their ratio corolla / PaddleClas (below 1:
corolla is faster), and the ratio of the median CPU times of this process, which
other processes on a shared machine disturb far less than wall-clock time.

Run: ``python benchmarks/bench_backbones.py [--models ResNet50_vd,VGG16] [--batches 1,8]
[--repeats 7] [--threads N]`` (needs ``pip install --no-deps paddleclas==2.6.0``).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import paddle

from corolla import load_registry
from corolla.engine.weights import apply_state_dict

DEFAULT_MODELS = (
    "ResNet50_vd",
    "ResNet101_vd",
    "MobileNetV3_large_x1_0",
    "PPLCNet_x1_0",
    "MobileNetV2",
    "VGG16",
    "SE_ResNeXt50_32x4d",
    "ShuffleNetV2_x1_0",
    "EfficientNetB0",
    "PPHGNetV2_B0",
    "ConvNeXt_tiny",
    "DeiT_tiny_patch16_224",
    "SwinTransformer_tiny_patch4_window7_224",
)


def paddleclas_backbones() -> dict[str, Callable[..., paddle.nn.Layer]]:
    spec = importlib.util.find_spec("paddleclas")
    if spec is None:
        sys.exit("needs PaddleClas: pip install --no-deps paddleclas==2.6.0")
    sys.path.append(str(Path(spec.submodule_search_locations[0])))
    import ppcls.arch.backbone
    from ppcls.utils import logger

    logger.init_logger()
    return vars(ppcls.arch.backbone)


def forward_ms(model: paddle.nn.Layer, images: paddle.Tensor) -> tuple[float, float]:
    """Wall-clock and process CPU milliseconds of one forward pass."""
    with paddle.no_grad():
        wall, cpu = time.perf_counter(), time.process_time()
        model(images)
        return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def compare(
    theirs: paddle.nn.Layer, ours: paddle.nn.Layer, batch: int, repeats: int, warmup: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) milliseconds of each run of ``ours`` and ``theirs``, timed alternately."""
    images = paddle.to_tensor(np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32))
    for _ in range(warmup):
        forward_ms(ours, images)
        forward_ms(theirs, images)
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "theirs": []}
    for round_ in range(repeats):
        order = [("ours", ours), ("theirs", theirs)]
        for key, model in order if round_ % 2 == 0 else reversed(order):
            times[key].append(forward_ms(model, images))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, help="CPU threads for Paddle (default: Paddle's own setting)")
    args = parser.parse_args()
    if args.threads:
        paddle.base.core.set_num_threads(args.threads)
    paddle.set_device("cpu")
    warnings.simplefilter("ignore")
    registry = load_registry()
    reference = paddleclas_backbones()

    header = f"{'model':<24} {'batch':>5} {'corolla ms':>11} {'PaddleClas ms':>14} {'ratio':>6} {'CPU ratio':>9}"
    print(f"paddle {paddle.__version__}, CPU, 224x224, eval, median of {args.repeats} alternating runs")
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        with paddle.utils.unique_name.guard():
            theirs = reference[name]()
        ours = registry.build("backbone", name)
        apply_state_dict(ours, {k: v.numpy() for k, v in theirs.state_dict().items()}, name=name, source="PaddleClas")
        theirs.eval()
        ours.eval()
        for batch in (int(b) for b in args.batches.split(",")):
            times = compare(theirs, ours, batch, args.repeats, args.warmup)
            (ours_ms, ours_cpu), (theirs_ms, theirs_cpu) = (
                [statistics.median(column) for column in zip(*times[key])] for key in ("ours", "theirs")
            )
            print(
                f"{name:<24} {batch:>5} {ours_ms:>11.1f} {theirs_ms:>14.1f} {ours_ms / theirs_ms:>6.2f} "
                f"{ours_cpu / theirs_cpu:>9.2f}",
                flush=True,
            )
        del theirs, ours


if __name__ == "__main__":
    main()
