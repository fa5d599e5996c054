"""Evaluation through an inference engine: the model's current weights traced once per
evaluation and run by Paddle Inference (oneDNN) or ONNX Runtime, several times faster than
dygraph on CPU (PPLCNet_x1_0 at batch 16 on two idle cores: 47 images/s in dygraph, 307
through Paddle Inference, 419 through ONNX Runtime).

``Global.eval_engine`` (CLI ``--eval-engine``) says how evaluation runs on CPU:

- ``dygraph``: the model itself;
- ``inference``: always through Paddle Inference;
- ``onnxruntime``: always through ONNX Runtime (the ``onnx`` extra; the traced model is
  converted by paddle2onnx, in a child started while the model is traced, unless its graph is
  cached);
- ``auto`` (the default): through an inference engine where it pays off: ONNX Runtime when
  the ``onnx`` extra is installed (it lets go of Python's lock while it runs, so the loader's
  thread prepares the next batch meanwhile; Paddle Inference holds it), else Paddle Inference.
  Each evaluation first runs :data:`PROBE` images in dygraph and times them; it traces when
  dygraph would take longer for the rest than tracing plus running the traced model. Until a
  job has traced once, a trace is assumed to cost :data:`TRACE_GUESS_S` (:data:`CACHED_GUESS_S`
  when the graph is cached) and to run :data:`SPEEDUP_GUESS` times faster; after that, the
  job's measured times decide.

ONNX Runtime's idle threads sleep instead of spinning, leaving the cores to the loader's thread.
Its converted graph is kept in the :mod:`graph cache <corolla.engine.graph_cache>` without its
weights: a later evaluation of the same network (the next epoch, another checkpoint, another
``corolla eval``) restores it with the current weights instead of tracing and converting again.
For Paddle Inference, a job converts the network to a static graph once and keeps it: later
evaluations of a training run only save it again and load it (about a third of the first
trace's cost). The probe also checks the traced model: its outputs must match
dygraph's (within :data:`TOLERANCE` of their largest value), else the job warns and
evaluates in dygraph from then on; so does a model that cannot be traced, or that returns
anything but tensors and dicts of tensors. Under ``auto``, a model paddle2onnx cannot
convert goes on through Paddle Inference (with a warning). A batch of another image size
than the first runs in dygraph. On GPU, evaluation is always dygraph.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import paddle

from corolla.config.sections import EVAL_ENGINES
from corolla.engine.flat_outputs import FlatOutputs, disagreement, leaves, rebuild
from corolla.engine.graph_cache import LAYOUT_FILE, GraphCache, cache_root, graph_key
from corolla.engine.onnx_convert import Conversion
from corolla.engine.runtimes import (MODEL_PREFIX, OnnxRuntime, PaddleRuntime, Runtime, missing_packages, require,
                                     traced)
from corolla.plugin.errors import CorollaError

#: the packages of the ``onnx`` extra that evaluation through ONNX Runtime needs
ONNX_PACKAGES = ("paddle2onnx", "onnx", "onnxruntime")
#: how many images of each evaluation's first batch dygraph runs, to time it and to check the traced model
PROBE = 2
#: before a job has traced once: what a trace is assumed to cost (3-15 s here), and how much faster the traced model runs
TRACE_GUESS_S = 8.0
SPEEDUP_GUESS = 5.0
#: what restoring a cached graph is assumed to cost
CACHED_GUESS_S = 0.5
#: how far the traced model's outputs may stray from dygraph's, relative to their largest value
TOLERANCE = 1e-3


class EvalEngine:
    """How one job (``corolla eval``, a training run) evaluates; see the module docstring.
    It keeps what it measured from one evaluation to the next."""

    def __init__(self, engine: str, *, device: str, threads: int) -> None:
        if engine not in EVAL_ENGINES:
            raise ValueError(f"Global.eval_engine: expected one of {', '.join(EVAL_ENGINES)}, found {engine!r}")
        self.engine = engine if device == "cpu" else "dygraph"
        self.threads = threads
        if self.engine == "onnxruntime":
            require(*ONNX_PACKAGES, purpose="Global.eval_engine: onnxruntime")
        #: which runtime runs the traced model: "onnxruntime" or "paddle"
        self.backend = "onnxruntime" if self.engine == "onnxruntime" or (
            self.engine == "auto" and onnx_installed()) else "paddle"
        #: measured: seconds to trace, load and first run the model; seconds per image of the traced model
        self.trace_s: float | None = None
        self.traced_s: float | None = None
        self._given_up = False
        root = cache_root()
        self.graphs = GraphCache(root) if root is not None and self.backend == "onnxruntime" else None
        self._static: tuple[tuple, paddle.nn.Layer] | None = None

    def static(self, model: paddle.nn.Layer, paths: list[tuple[str, ...]], image_shape: Sequence[int]) -> paddle.nn.Layer:
        """``model`` with its outputs at ``paths`` flattened, as a static graph: built once per job."""
        key = (id(model), tuple(paths), tuple(image_shape))
        if self._static is None or self._static[0] != key:
            flat = FlatOutputs(model, paths)
            flat.eval()
            self._static = (key, traced(flat, image_shape))
        return self._static[1]

    @contextlib.contextmanager
    def evaluation(self, model: paddle.nn.Layer, *, batches: int | None) -> Iterator[Any]:
        """The forward pass of one evaluation of ``model`` over ``batches`` batches."""
        run = _Evaluation(self, model, batches)
        try:
            yield run
        finally:
            run.close()

    @property
    def active(self) -> bool:
        """Whether evaluations may go through Paddle Inference (not dygraph only, not given up)."""
        return self.engine != "dygraph" and not self._given_up

    def worth_tracing(self, dygraph_s: float, images_left: int | None, *, cached: bool = False) -> bool:
        """Whether tracing now pays off, with dygraph taking ``dygraph_s`` per image (``cached``: the
        graph is in the :mod:`graph cache <corolla.engine.graph_cache>`)."""
        if not self.active:
            return False
        if self.engine != "auto":  # asked for by name
            return True
        if not images_left:
            return False
        trace_s = CACHED_GUESS_S if cached else self.trace_s if self.trace_s is not None else TRACE_GUESS_S
        traced_s = self.traced_s if self.traced_s is not None else dygraph_s / SPEEDUP_GUESS
        return dygraph_s * images_left > trace_s + traced_s * images_left

    def start_conversion(self) -> Conversion | None:
        """For ONNX Runtime: the conversion's child, started before the model is saved (it imports
        paddle2onnx meanwhile); None for Paddle Inference."""
        return Conversion() if self.backend == "onnxruntime" else None

    def find_graph(self, model: paddle.nn.Layer, outputs: Any, image_shape: Sequence[int]) -> tuple[str, Path | None] | None:
        """For ONNX Runtime with the graph cache on: the key of ``model``'s graph (giving ``outputs``
        for ``image_shape`` images) and its cached entry (None before it is cached)."""
        if self.graphs is None or self.backend != "onnxruntime":
            return None
        paths = [path for path, _ in leaves(outputs)]
        key = graph_key(model, paths, image_shape)
        return key, self.graphs.find(key)

    def open_runtime(self, folder: Path, conversion: Conversion | None, *,
                     entry: tuple[Path, list[str]] | None = None) -> Runtime:
        """The runtime for the model saved in ``folder``: ONNX Runtime after ``conversion`` (which also
        writes the graph cache's ``entry``), or Paddle Inference (also for the rest of the job when
        ``auto`` finds that paddle2onnx cannot convert it)."""
        if conversion is not None:
            try:
                conversion.run(folder, entry=entry)
                return OnnxRuntime(folder, threads=self.threads, spin_wait=False)
            except CorollaError as exc:
                if self.engine == "onnxruntime":
                    raise
                self.backend = "paddle"
                warnings.warn(f"Global.eval_engine: auto: ONNX Runtime cannot run this model ({exc}); evaluating "
                              "through Paddle Inference", UserWarning, stacklevel=3)
        return PaddleRuntime(folder, threads=self.threads)

    def give_up(self, reason: str) -> None:
        """Evaluate in dygraph for the rest of the job, saying why."""
        self._given_up = True
        warnings.warn(f"Global.eval_engine: {reason}; evaluating in dygraph (set eval_engine: dygraph to skip the attempt)",
                      UserWarning, stacklevel=3)


def _host_array(images: paddle.Tensor) -> np.ndarray:
    """A CPU tensor's data as a NumPy array: shared through DLPack where Paddle offers it (3.x), else a copy."""
    return np.from_dlpack(images) if hasattr(images, "__dlpack__") else images.numpy()


def onnx_installed() -> bool:
    """Whether the ``onnx`` extra (paddle2onnx, onnx, onnxruntime) is installed."""
    return not missing_packages(*ONNX_PACKAGES)


class _Evaluation:
    """One evaluation: dygraph for the first batch, then the traced model when the job says so."""

    def __init__(self, job: EvalEngine, model: paddle.nn.Layer, batches: int | None) -> None:
        self.job, self.batches = job, batches
        self.model = model._layers if isinstance(model, paddle.DataParallel) else model
        self.dygraph = model
        self.folder: Path | None = None
        self.runtime: Runtime | None = None
        self.template: Any = None
        self.shape: tuple[int, ...] = ()
        self.first = True
        self.traced_time, self.traced_images = 0.0, 0

    def __call__(self, images: paddle.Tensor) -> Any:
        if self.runtime is not None and tuple(images.shape[1:]) == self.shape:
            return self._traced(images)
        if not self.first or not self.job.active:
            return self.dygraph(images)
        self.first = False
        count = int(images.shape[0])
        probe = images[:PROBE]
        started = time.perf_counter()
        expected = self.dygraph(probe)
        dygraph_s = (time.perf_counter() - started) / int(probe.shape[0])
        left = self.batches * count - int(probe.shape[0]) if self.batches is not None else None
        graph = self.job.find_graph(self.model, expected, images.shape[1:])
        if self.job.worth_tracing(dygraph_s, left, cached=graph is not None and graph[1] is not None) \
                and self._trace(images, expected, graph):
            return self._traced(images)
        return self.dygraph(images)

    def _trace(self, images: paddle.Tensor, expected: Any, graph: tuple[str, Path | None] | None) -> bool:
        """Trace the model (or restore its cached graph, ``graph`` being its key and entry), load it and
        check it against dygraph's ``expected`` outputs for the first images of ``images``; whether it is ready."""
        outputs = list(leaves(expected))
        if not all(isinstance(tensor, paddle.Tensor) for _, tensor in outputs):
            self.job.give_up(f"the model returns {type(expected).__name__}, not tensors or dicts of tensors")
            return False
        started = time.perf_counter()
        self.folder = Path(tempfile.mkdtemp(prefix="corolla-eval-"))
        if graph is not None and graph[1] is not None and self._restore(graph, images, outputs):
            self.job.trace_s = time.perf_counter() - started
            self.template, self.shape = expected, tuple(images.shape[1:])
            return True
        conversion = None
        try:
            conversion = self.job.start_conversion()
            static = self.job.static(self.model, [path for path, _ in outputs], images.shape[1:])
            paddle.jit.save(static, str(self.folder / MODEL_PREFIX))
            state = self.model.state_dict()
            entry = (self.folder / "entry", [tensor.name for tensor in state.values()]) if graph is not None else None
            if entry is not None:
                entry[0].mkdir()
            self.runtime = self.job.open_runtime(self.folder, conversion, entry=entry)
            got = self.runtime.run(images[:PROBE].numpy())
        except Exception as exc:  # noqa: BLE001 - any failure to trace means: evaluate in dygraph
            if conversion is not None:
                conversion.close()
            self.close()
            engine = "ONNX Runtime" if self.job.backend == "onnxruntime" else "Paddle Inference"
            self.job.give_up(f"the model could not be traced for {engine} ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:300]})")
            return False
        self.job.trace_s = time.perf_counter() - started
        reason = disagreement(outputs, got, TOLERANCE)
        if reason is not None:
            self.close()
            self.job.give_up(reason)
            return False
        if entry is not None and isinstance(self.runtime, OnnxRuntime) and (entry[0] / LAYOUT_FILE).is_file():
            self.job.graphs.keep(graph[0], entry[0], {tensor.name: name for name, tensor in state.items()}, state)
        self.template, self.shape = expected, tuple(images.shape[1:])
        return True

    def _restore(self, graph: tuple[str, Path], images: paddle.Tensor, outputs: list) -> bool:
        """Open the cached graph with the model's current weights; whether it gives dygraph's
        outputs (an entry that does not is discarded)."""
        key, entry = graph
        try:
            self.job.graphs.restore(entry, self.model.state_dict(), self.folder)
            self.runtime = OnnxRuntime(self.folder, threads=self.job.threads, spin_wait=False)
            if disagreement(outputs, self.runtime.run(images[:PROBE].numpy()), TOLERANCE) is None:
                return True
        except Exception:  # noqa: BLE001 - a damaged entry: trace afresh
            pass
        self.job.graphs.discard(key)
        self.runtime = None
        for path in self.folder.iterdir():
            path.unlink()
        return False

    def _traced(self, images: paddle.Tensor) -> Any:
        started = time.perf_counter()
        arrays = self.runtime.run(_host_array(images))
        self.traced_time += time.perf_counter() - started
        self.traced_images += int(images.shape[0])
        return rebuild(self.template, iter(paddle.to_tensor(a) for a in arrays))

    def close(self) -> None:
        if self.traced_images:
            self.job.traced_s = self.traced_time / self.traced_images
        self.runtime = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
            # a predictor leaves Paddle's CPU thread settings changed, which changes dygraph's
            # numerics in the last bits: restore them, so that training goes on exactly as before
            paddle.base.core.set_num_threads(self.job.threads)
