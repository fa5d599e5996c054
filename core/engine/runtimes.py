"""The exported network: how it is traced and saved, and the runtimes that run it.

:func:`save_program` writes the Paddle program and weights of a layer (:func:`traced`). The runtimes,
Paddle Inference and ONNX Runtime, each take a float32 NCHW batch and returns the network's outputs as NumPy arrays, in
the order the program returns them. Paddle Inference reads the program Paddle wrote
(``inference.json`` on Paddle 3, ``inference.pdmodel`` on 2.6) with
``inference.pdiparams``; ONNX Runtime reads ``inference.onnx``. onnxruntime is an
optional dependency (the ``onnx`` extra), imported only when used.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import paddle
from paddle import inference

from corolla.plugin.errors import CorollaError, DataError

MODEL_PREFIX = "inference"
ONNX_NAME = f"{MODEL_PREFIX}.onnx"
PARAMS_NAME = f"{MODEL_PREFIX}.pdiparams"
#: ``corolla predict --backend``: the runtime of each
BACKENDS = ("paddle", "onnxruntime")


class MissingExtraError(CorollaError):
    """An optional dependency is not installed."""


def missing_packages(*modules: str) -> list[str]:
    """Which of the packages ``modules`` are not installed."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(*modules: str, purpose: str) -> None:
    """Check that the packages ``modules`` of the ``onnx`` extra are installed, or say how to install them."""
    missing = missing_packages(*modules)
    if missing:
        raise MissingExtraError(
            f"{purpose} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed; "
            "install the onnx extra: pip install 'corolla[onnx]' (paddle2onnx and onnxruntime)"
        )


def traced(layer: paddle.nn.Layer, image_shape: Sequence[int]) -> paddle.nn.Layer:
    """``layer`` (in eval mode) converted to a static graph for batches of any size of
    ``image_shape`` images, input named ``x``; the program is built on the first save and
    kept, so that saving it again (new weights, same network) takes a fraction of the time."""
    spec = paddle.static.InputSpec([None, *image_shape], "float32", name="x")
    return paddle.jit.to_static(layer, input_spec=[spec], full_graph=True)


def save_program(layer: paddle.nn.Layer, prefix: Path, image_shape: Sequence[int]) -> None:
    """Trace ``layer`` and save its program and weights at ``prefix`` (``paddle.jit.save``)."""
    paddle.jit.save(traced(layer, image_shape), str(prefix))


def program_file(folder: Path) -> Path | None:
    """The Paddle program in ``folder``: ``inference.json`` (Paddle 3) or ``inference.pdmodel`` (2.6)."""
    return next((p for p in (folder / f"{MODEL_PREFIX}{s}" for s in (".json", ".pdmodel")) if p.is_file()), None)


class Runtime(Protocol):
    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """The network's outputs for a float32 NCHW batch."""


class PaddleRuntime:
    """Paddle Inference: oneDNN on CPU (unless ``onednn`` is off), CUDA with ``device="gpu"``."""

    def __init__(self, folder: Path, *, device: str = "cpu", threads: int = 1, onednn: bool = True) -> None:
        program = program_file(folder)
        if program is None or not (folder / PARAMS_NAME).is_file():
            missing = folder / (PARAMS_NAME if program else f"{MODEL_PREFIX}.json")
            raise DataError(f"{missing} not found: {folder} holds no Paddle inference model "
                            f"(export with --format paddle or all, or predict with --backend onnxruntime)")
        config = inference.Config(str(program), str(folder / PARAMS_NAME))
        if device == "gpu" and paddle.device.is_compiled_with_cuda():
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            if onednn:
                config.enable_mkldnn()
            else:  # on by default in CPU builds
                config.disable_mkldnn()
            config.set_cpu_math_library_num_threads(threads)
        config.switch_ir_optim(True)
        config.disable_glog_info()
        # enable_memory_optim() breaks create_predictor for PIR programs on Paddle 3.3 CPU
        try:
            self.predictor = inference.create_predictor(config)
        except (RuntimeError, ValueError, OSError) as exc:
            raise DataError(f"{program}: Paddle Inference cannot load it ({_one_line(exc)}); export it again") from exc
        self._input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self._outputs = [self.predictor.get_output_handle(name) for name in self.predictor.get_output_names()]

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        self._input.reshape(list(images.shape))
        self._input.copy_from_cpu(np.ascontiguousarray(images, dtype=np.float32))
        self.predictor.run()
        return [output.copy_to_cpu() for output in self._outputs]


class OnnxRuntime:
    """ONNX Runtime on ``inference.onnx``: the CPU provider, or CUDA with ``device="gpu"`` when installed.
    ``spin_wait=False`` lets its idle threads sleep instead of spinning (a little slower alone, faster
    when another thread of the process needs the cores, as the loader's does during evaluation)."""

    def __init__(self, folder: Path, *, device: str = "cpu", threads: int = 1, spin_wait: bool = True) -> None:
        require("onnxruntime", purpose="the onnxruntime backend")
        import onnxruntime as ort

        path = folder / ONNX_NAME
        if not path.is_file():
            raise DataError(f"{path} not found: {folder} holds no ONNX model "
                            "(export with --format onnx or all, or predict with --backend paddle)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: not a warning per unused initializer
        if not spin_wait:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device == "gpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors derive from Exception only
            raise DataError(f"{path}: ONNX Runtime cannot load it ({_one_line(exc)}); export it again") from exc
        self.path = path
        self._input = self.session.get_inputs()[0]

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(None, {self._input.name: np.ascontiguousarray(images, dtype=np.float32)})
        except Exception:  # noqa: BLE001 - onnxruntime's errors derive from Exception only
            expected = self._input.shape  # [N, C, H, W], N a name (any batch)
            if images.ndim == len(expected) and all(not isinstance(d, int) or d == n for d, n in zip(expected[1:], images.shape[1:])):
                raise
        raise DataError(f"{self.path} takes images of shape {list(expected[1:])}, but the preprocessing made "
                        f"{list(images.shape[1:])}: export again with Global.image_shape set to what Infer.transforms make")


def open_runtime(folder: Path, backend: str, *, device: str = "cpu", threads: int = 1) -> Runtime:
    """The runtime ``backend`` (one of :data:`BACKENDS`) on the export in ``folder``."""
    if backend == "paddle":
        return PaddleRuntime(folder, device=device, threads=threads)
    if backend == "onnxruntime":
        return OnnxRuntime(folder, device=device, threads=threads)
    raise CorollaError(f"--backend: expected one of {', '.join(BACKENDS)}, found {backend!r}")


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
