"""``corolla env``: what corolla runs on: Python, Paddle and its CUDA, devices, threads, optional packages."""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform

#: optional packages and what corolla uses them for
OPTIONAL = {
    "paddleclas": "parity tests against PaddleClas",
    "optuna": "corolla search",
    "paddle2onnx": "export --format onnx",
    "onnxruntime": "predict --backend onnxruntime",
    "visualdl": "Global.use_visualdl",
    "opencv-python": "transforms with backend: cv2",
}


def run(args: argparse.Namespace) -> int:
    print(report())
    return 0


def report() -> str:
    """The lines ``corolla env`` prints."""
    import corolla
    from corolla.data.placement import USER_OMP_THREADS, cpu_thread_count

    lines = [f"corolla       {corolla.__version__}", f"python        {platform.python_version()} ({platform.platform()})"]
    try:
        import paddle
    except ImportError as exc:
        lines.append(f"paddle        not importable: {exc} (pip install -e '.[cpu]' or '.[gpu]')")
        return "\n".join(lines)
    cuda = paddle.device.is_compiled_with_cuda()
    lines.append(f"paddle        {paddle.__version__} ({'CUDA build' if cuda else 'CPU build'})")
    if cuda:
        lines.append(f"cuda          {paddle.version.cuda()}  cudnn {paddle.version.cudnn()}")
        count = paddle.device.cuda.device_count()
        names = [paddle.device.cuda.get_device_name(i) for i in range(count)]
        lines.append(f"gpus          {count}" + (f": {', '.join(names)}" if names else " (none visible: check CUDA_VISIBLE_DEVICES and the driver)"))
    lines.append(f"cpu threads   {cpu_thread_count()} of {os.cpu_count()} cores"
                 + (f" (OMP_NUM_THREADS={USER_OMP_THREADS})" if USER_OMP_THREADS else ""))
    lines.append(_graph_cache_line())
    for package, purpose in OPTIONAL.items():
        try:
            found = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found = "not installed"
        lines.append(f"{package:<13} {found:<14} {purpose}")
    return "\n".join(lines)


def _graph_cache_line() -> str:
    from corolla.engine.graph_cache import GRAPH_CACHE_ENV, cache_root

    root = cache_root()
    if root is None:
        return f"graph cache   off ({GRAPH_CACHE_ENV}=off)"
    entries = sum(1 for entry in root.iterdir() if not entry.name.startswith(".")) if root.is_dir() else 0
    return f"graph cache   {root} ({entries} evaluation graphs; ${GRAPH_CACHE_ENV} moves it, =off turns it off)"
