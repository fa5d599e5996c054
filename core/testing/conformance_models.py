"""Conformance checks of the kinds that compute on tensors: backbone, loss and metric."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import paddle
import paddle.nn.functional as F

from corolla.engine.files import write_checkpoint
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.engine.weights import apply_state_dict
from corolla.plugin.arguments import accepted_arguments
from corolla.plugin.errors import ComponentArgumentError
from corolla.plugin.outputs import pick_output
from corolla.plugin.registry import Registry
from corolla.testing.conformance_rules import ConformanceError, component, default_registry, must


def check_backbone(name: str, params: Mapping[str, Any] | None = None, *, registry: Registry | None = None,
                   class_num: int = 3, input_size: int = 32, batch_size: int = 2) -> None:
    """A backbone: built with ``class_num`` (and ``params``) it is a ``paddle.nn.Layer`` whose
    forward gives finite logits ``[N, class_num]`` (or a dict with ``"logits"``); one training
    step gives every trainable parameter a finite gradient and changes the weights; its state
    dict, written and read as a checkpoint, makes a second instance give the same outputs; and
    with ``return_stages: True`` it also returns ``stage<i>`` features (a family without stages
    refuses it with a ComponentArgumentError)."""
    options = {"class_num": class_num, **dict(params or {})}
    paddle.seed(0)
    model, where = component(registry, "backbone", name, options)
    must(isinstance(model, paddle.nn.Layer), where, f"the factory returned {type(model).__name__}, not a paddle.nn.Layer")
    images = paddle.to_tensor(np.random.default_rng(0).standard_normal((batch_size, 3, input_size, input_size), np.float32))
    model.train()
    logits = _logits(model(images), where)
    must(list(logits.shape) == [batch_size, class_num], where,
         f"returned logits of shape {list(logits.shape)} for {batch_size} images; expected [{batch_size}, {class_num}]")
    must(np.isfinite(logits.numpy()).all(), where, "returned logits that are not finite")
    _train_step(model, logits, class_num, where)
    _round_trip(model, images, name, options, registry, where)


def _logits(output: Any, where: str) -> paddle.Tensor:
    must(isinstance(output, paddle.Tensor) or (isinstance(output, Mapping) and "logits" in output), where,
         f"forward returned {type(output).__name__}; expected the logits, or a dict with 'logits'")
    return pick_output(output)


def _train_step(model: paddle.nn.Layer, logits: paddle.Tensor, class_num: int, where: str) -> None:
    labels = paddle.to_tensor(np.arange(logits.shape[0]) % class_num, dtype="int64")
    F.cross_entropy(logits, labels).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if not p.stop_gradient]
    must(trainable, where, "has no trainable parameters")
    missing = [n for n, p in trainable if p.grad is None]
    must(len(missing) < len(trainable), where, "no parameter got a gradient from the logits")
    broken = [n for n, p in trainable if p.grad is not None and not np.isfinite(p.grad.numpy()).all()]
    must(not broken, where, f"gradients that are not finite: {', '.join(broken[:5])}")
    before = [p.numpy().copy() for _, p in trainable]
    # a small step, clipped element-wise: tiny test batches can give BatchNorm nets gradients
    # whose global norm overflows float32 (EfficientNetV2_S on Paddle 2.6: 1e21), and clipping by
    # that norm then scales every gradient to zero
    optimizer = paddle.optimizer.SGD(learning_rate=1e-3, parameters=[p for _, p in trainable],
                                     grad_clip=paddle.nn.ClipGradByValue(1.0))
    optimizer.step()
    optimizer.clear_grad()
    must(any(not np.array_equal(b, p.numpy()) for b, (_, p) in zip(before, trainable)), where,
         "one SGD step changed no weight")


def _round_trip(model: paddle.nn.Layer, images: paddle.Tensor, name: str, options: dict,
                registry: Registry | None, where: str) -> None:
    """Load the trained model's state, written and read as a checkpoint, into a second instance
    (asked for its stages when the builder takes ``return_stages``): the same logits."""
    model.eval()
    with paddle.no_grad():
        reference = _logits(model(images), where).numpy()
    must(np.isfinite(reference).all(), where, "after one training step the logits (eval mode) are not finite")
    with tempfile.TemporaryDirectory() as folder:
        prefix = Path(folder) / "model"
        write_checkpoint(prefix, {".pdparams": {k: v.numpy() for k, v in model.state_dict().items()}})
        state = load_state_dict_file(f"{prefix}.pdparams")
    paddle.seed(1)  # a different initialisation, which the state must overwrite
    other, staged = _with_stages(name, options, registry, where)
    apply_state_dict(other, state, name=name, source="its own state dict", strict=True)
    other.eval()
    with paddle.no_grad():
        output = other(images)
    must(np.allclose(reference, _logits(output, where).numpy(), rtol=1e-4, atol=1e-5), where,
         "a second instance loaded with the first one's state dict gives other logits (state kept outside "
         "parameters and buffers?)")
    if staged:
        stages = [k for k in output if str(k).startswith("stage")] if isinstance(output, Mapping) else []
        must(stages, where, f"with return_stages=True forward returned {type(output).__name__} "
                            f"{sorted(output) if isinstance(output, Mapping) else ''}; expected 'logits' and 'stage<i>' keys")
        for key in stages:
            must(isinstance(output[key], paddle.Tensor) and output[key].shape[0] == images.shape[0], where,
                 f"output {key!r} is not a Tensor with the batch first")


def _with_stages(name: str, options: dict, registry: Registry | None, where: str) -> tuple[paddle.nn.Layer, bool]:
    """The backbone built with ``return_stages=True`` when it takes it and has stages, else as given;
    and whether it was."""
    accepted, any_key = accepted_arguments((registry or default_registry()).resolve("backbone", name).load())
    if "return_stages" in accepted or any_key:
        try:
            return component(registry, "backbone", name, {**options, "return_stages": True})[0], True
        except ComponentArgumentError as exc:  # a family without stages says so
            must("stages" in str(exc), where, f"return_stages=True was refused without saying why: {exc}")
    return component(registry, "backbone", name, options)[0], False


def check_loss(name: str, params: Mapping[str, Any] | None = None, *, registry: Registry | None = None,
               class_num: int = 4, batch_size: int = 4, outputs: Callable[[paddle.Tensor], Any] | None = None,
               labels: Any = None, skips_unlabeled: bool = True) -> None:
    """A loss: ``loss(outputs, labels)`` returns ``{term: scalar Tensor}`` (finite, no term
    called ``loss``) whose sum sends a finite gradient to the model's outputs. When it needs
    labels (its value changes with them) it skips unlabeled rows (label -1): no gradient for
    them, a finite value for a batch without any label. ``outputs`` makes what the model
    would return from logits ``[N, class_num]`` (default: the logits); ``labels`` replaces
    the int64 ``[N]`` labels (multi-label, soft), which skips the unlabeled-row checks, as
    ``skips_unlabeled=False`` does for a loss that uses a stand-in for a missing label
    (a teacher's prediction)."""
    loss, where = component(registry, "loss", name, params)
    must(callable(loss), where, f"the factory returned {type(loss).__name__}, which is not callable as loss(outputs, labels)")
    make = outputs or (lambda logits: logits)
    logits = paddle.to_tensor(np.random.default_rng(0).standard_normal((batch_size, class_num), np.float32),
                              stop_gradient=False)
    hard = np.arange(batch_size, dtype=np.int64) % class_num
    hard[-1] = -1
    given = hard if labels is None else np.asarray(labels)
    terms = _terms(loss(make(logits), paddle.to_tensor(given)), where)
    paddle.add_n(list(terms.values())).backward()
    must(logits.grad is not None, where, "no gradient reaches the model's outputs")
    grad = logits.grad.numpy()
    must(np.isfinite(grad).all(), where, "the gradient is not finite")
    if labels is not None or not skips_unlabeled:
        return
    frozen = logits.detach()
    moved = np.where(hard >= 0, (hard + 1) % class_num, -1)
    other = _terms(loss(make(frozen), paddle.to_tensor(moved)), where)
    if all(math.isclose(float(terms[k]), float(other[k]), rel_tol=1e-6, abs_tol=1e-7) for k in terms):
        return  # does not read labels
    must(not np.abs(grad[-1]).any(), where, "the unlabeled row (label -1) gets a gradient; a loss that needs labels "
                                            "skips unlabeled rows")
    _terms(loss(make(frozen), paddle.to_tensor(np.full(batch_size, -1, np.int64))), where)


def _terms(made: Any, where: str) -> dict[str, paddle.Tensor]:
    must(isinstance(made, Mapping) and made, where,
         f"returned {type(made).__name__}; expected a non-empty dict of named scalar Tensors")
    must("loss" not in made, where, "returned a term called 'loss', the name of the engine's weighted sum")
    for key, value in made.items():
        must(isinstance(key, str) and isinstance(value, paddle.Tensor) and int(np.prod(value.shape)) == 1, where,
             f"term {key!r} is {type(value).__name__} of shape {getattr(value, 'shape', '?')}; expected a scalar Tensor")
        must(np.isfinite(float(value)), where, f"term {key!r} is {float(value)}, not finite")
    return dict(made)


def check_metric(name: str, params: Mapping[str, Any] | None = None, *, registry: Registry | None = None,
                 class_num: int = 4, batch_size: int = 8, multilabel: bool = False,
                 outputs: Callable[[paddle.Tensor], Any] | None = None) -> None:
    """A metric: ``update(outputs, labels)`` returns this batch's ``{name: number}``,
    ``result()`` the numbers since ``reset()``, and ``reset()`` forgets every batch before it.
    Labels are int64 ``[N]`` with an unlabeled row (-1), or with ``multilabel`` float
    ``[N, class_num]`` of 0 and 1; ``outputs`` as :func:`check_loss`'s."""
    metric, where = component(registry, "metric", name, params)
    for method in ("update", "result", "reset"):
        must(callable(getattr(metric, method, None)), where, f"has no {method}() method")
    make = outputs or (lambda logits: logits)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(2):
        logits = paddle.to_tensor(rng.standard_normal((batch_size, class_num), np.float32))
        if multilabel:
            labels = (rng.random((batch_size, class_num)) > 0.5).astype(np.float32)
        else:
            labels = rng.integers(0, class_num, batch_size).astype(np.int64)
            labels[-1] = -1
        batches.append((logits, paddle.to_tensor(labels)))
    metric.reset()
    _numbers(metric.update(make(batches[0][0]), batches[0][1]), where, "update()", empty=True)
    first = _numbers(metric.result(), where, "result()", empty=False)
    metric.update(make(batches[1][0]), batches[1][1])
    metric.reset()
    metric.update(make(batches[0][0]), batches[0][1])
    again = _numbers(metric.result(), where, "result()", empty=False)
    must(first.keys() == again.keys() and all(np.isclose(first[k], again[k], equal_nan=True) for k in first), where,
         f"after reset() and the same batch, result() gave {again}, not {first}: reset() must forget earlier batches")


def _numbers(values: Any, where: str, call: str, *, empty: bool) -> dict[str, float]:
    must(isinstance(values, Mapping) and (empty or values), where,
         f"{call} returned {values!r}; expected a {'' if empty else 'non-empty '}dict of name -> number")
    try:
        return {str(k): float(v) for k, v in values.items()}
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"{where}: {call} returned {values!r}: values must be numbers ({exc})") from None
