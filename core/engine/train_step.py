"""The forward half of a training step, ``(images, labels) -> (outputs, losses)``, eager or compiled.

With ``Global.to_static`` the model's forward pass and the loss run as one static graph
(``paddle.jit.to_static``, its AST mode: the same on Paddle 2.6 and 3.x, where 2.6's
bytecode mode fails on keyword-only arguments); the backward pass runs the graph's
gradient, and the optimizer step stays eager, as in PaddleClas. The parameters are the
model's own, so checkpoints, EMA and evaluation see no difference. Each new input shape
(the last, smaller batch of an epoch; each size of a multi-scale sampler) compiles once;
the step log's images/s leaves the compiling out.
"""
from __future__ import annotations

import time
from typing import Any, ContextManager

import paddle

from corolla.plugin.errors import ConfigError, CorollaError
from corolla.plugin.outputs import ModelOutputs, pick_output


class TrainForward(paddle.nn.Layer):
    """The model and the training loss as one layer: what ``Global.to_static`` compiles."""

    def __init__(self, model: paddle.nn.Layer, loss: paddle.nn.Layer, class_num: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.class_num = class_num
        self.problem: str | None = None  # what is wrong with the model's logits, if anything
        self.primary: dict[str, str] = {}  # a ModelOutputs' primary, seen when the graph was traced

    def forward(self, images: paddle.Tensor, labels: paddle.Tensor) -> tuple[Any, Any]:
        outputs = self.model(images)
        self.problem = _logits_problem(outputs, self.class_num)
        if self.problem and paddle.in_dynamic_mode():  # a compiled step says so once traced, not inside Paddle's tracing
            raise ConfigError(self.problem)
        losses = self.loss(outputs, labels)
        if isinstance(outputs, ModelOutputs):  # a static graph hands back plain dicts
            self.primary["name"] = outputs.primary
            outputs = dict(outputs)
        return outputs, losses


class TrainStep:
    """``step(images, labels) -> (outputs, losses)`` for the engine; ``no_sync()`` keeps a data-parallel
    run's gradients local (between the batches of one update, ``Global.update_freq``).

    Eager: ``model`` under ``paddle.DataParallel`` when ``distributed``, then the loss, as the
    engine always ran. Compiled: the :class:`TrainForward` of both, under ``DataParallel``.
    """

    def __init__(self, model: paddle.nn.Layer, loss: paddle.nn.Layer, *, to_static: bool, distributed: bool,
                 class_num: int | None = None) -> None:
        self.to_static = to_static
        if to_static:
            self.eager_model = model  # evaluation runs eagerly, outside DataParallel (it takes no gradients)
            self.layer = paddle.jit.to_static(TrainForward(model, loss, class_num), full_graph=True, backend=None)
            self.forward = self._parallel = paddle.DataParallel(self.layer) if distributed else self.layer
        else:
            self.eager_model = self._parallel = paddle.DataParallel(model) if distributed else model
            self.layer = self.forward = TrainForward(self.eager_model, loss, class_num)
        self._compiled: set[tuple[tuple[int, ...], ...]] = set()  # the input shapes traced so far
        #: seconds spent in the steps that compiled a new input shape; the engine's
        #: images/s leaves them out and sets this back to 0 when it logs
        self.compile_s = 0.0

    def __call__(self, images: paddle.Tensor, labels: paddle.Tensor) -> tuple[Any, Any]:
        shapes = (tuple(images.shape), tuple(labels.shape))
        if not self.to_static or shapes in self._compiled:
            outputs, losses = self.forward(images, labels)
        else:
            started = time.perf_counter()
            try:
                outputs, losses = self.forward(images, labels)
            except CorollaError:
                raise
            except Exception as exc:  # a call with a new shape traces the graph: say which setting to turn off
                raise ConfigError(f"Global.to_static: compiling the training step failed ({type(exc).__name__}: "
                                  f"{exc}); set Global.to_static: false to train eagerly") from exc
            if self.layer.problem:
                raise ConfigError(self.layer.problem)
            self._compiled.add(shapes)
            self.compile_s += time.perf_counter() - started
        primary = self.layer.primary.get("name")
        if primary is not None and not isinstance(outputs, ModelOutputs):
            outputs = ModelOutputs(outputs, primary=primary)
        return outputs, losses

    def no_sync(self) -> ContextManager:
        """Paddle's ``DataParallel.no_sync`` (only for a data-parallel run)."""
        return self._parallel.no_sync()


def _logits_problem(outputs: Any, class_num: int | None) -> str | None:
    """What is wrong with the model's logits, if they are not ``[batch, class_num]``: a backbone
    plugin of another shape would otherwise surface as a label "out of range" in the loss, or
    train on nonsense."""
    logits = pick_output(outputs)
    shape = getattr(logits, "shape", None)
    if shape is None:
        return (f"Arch: the model returned a {type(logits).__name__}, expected logits (a Tensor [batch, class_num]) "
                "or a dict with 'logits'")
    if len(shape) != 2 or (class_num is not None and shape[1] != class_num):
        expected = f"[batch, {class_num}] (class_num)" if class_num is not None else "[batch, classes]"
        return f"Arch: the model returned logits of shape {list(shape)}, expected {expected}"
    return None
