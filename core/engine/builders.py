"""Build what a job needs from its plan: model, metrics, optimizer and lr schedule."""
from __future__ import annotations

import warnings
from typing import Any

import paddle

from corolla.config.plan import Plan
from corolla.engine.checkpoint import load_weights
from corolla.plugin.errors import ConfigError
from corolla.plugin.lifecycle import hook_problems


def build_model(plan: Plan) -> paddle.nn.Layer:
    """The ``Arch`` model."""
    part = plan.model.part
    model = part.build(plan.registry)
    if not isinstance(model, paddle.nn.Layer):
        raise ConfigError(f"Arch.name: backbone {part.name!r} returned {type(model).__name__}, expected a paddle.nn.Layer")
    return model


def build_trained_model(plan: Plan) -> paddle.nn.Layer:
    """The model with ``Global.pretrained_model`` loaded, in eval mode (for eval,
    infer and export; another class count is an error, as nothing would train the
    classifier); without one, the weights of ``Global.checkpoints`` (PaddleClas reads
    that key in training only, which left such a model random), with a warning."""
    model = build_model(plan)
    settings = plan.settings
    if settings.pretrained_model:
        if settings.checkpoints:
            warnings.warn(f"Global.checkpoints ({settings.checkpoints}) is not read here: the weights are "
                          f"Global.pretrained_model's ({settings.pretrained_model})", UserWarning, stacklevel=2)
        load_weights(model, settings.pretrained_model, key_path="Global.pretrained_model", fresh_classifier=False)
    elif settings.checkpoints:
        warnings.warn(f"Global.pretrained_model is not set: the weights are Global.checkpoints' ({settings.checkpoints}); "
                      "Global.pretrained_model is the key for eval, infer and export", UserWarning, stacklevel=2)
        load_weights(model, settings.checkpoints, key_path="Global.checkpoints", fresh_classifier=False)
    elif not plan.model.part.params.get("pretrained"):
        warnings.warn(
            "Global.pretrained_model is not set and Arch.pretrained is off: the model has random weights "
            "(set -o Global.pretrained_model=output/<Arch>/best_model)",
            UserWarning,
            stacklevel=2,
        )
    model.eval()
    return model


def inference_model(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """The layer that predicts: a composite model's ``inference_model()``, else the model."""
    pick = getattr(model, "inference_model", None)
    return pick() if callable(pick) else model


def build_metrics(plan: Plan, mode: str) -> list:
    """The metric objects of ``Metric.<mode>`` (``Train`` or ``Eval``)."""
    return [part.build(plan.registry) for part in plan.metrics[mode]]


class Trainable(paddle.nn.Layer):
    """The model and the loss side by side: what the optimizer updates (losses may
    have parameters) and what its checkpoint state is keyed by."""

    def __init__(self, model: paddle.nn.Layer, loss: paddle.nn.Layer) -> None:
        super().__init__()
        self.model = model
        self.loss = loss


def build_optimizer(plan: Plan, trainable: paddle.nn.Layer, *, epochs: int, steps_per_epoch: int) -> tuple[Any, Any]:
    """The ``Optimizer`` section's optimizer and its lr schedule."""
    schedule = plan.lr_schedule.build(plan.registry, epochs=epochs, step_each_epoch=steps_per_epoch)
    optimizer = plan.optimizer.build(plan.registry, model=trainable, learning_rate=schedule)
    return optimizer, schedule


def build_callbacks(plan: Plan) -> list:
    """The objects of ``Global.callbacks`` (plus VisualDL when ``use_visualdl``), each with
    only right lifecycle-hook methods (a misspelt one would never be called)."""
    callbacks = []
    for part in plan.callbacks:
        callback = part.build(plan.registry)
        if problems := hook_problems(callback):
            raise ConfigError(f"{part.key_path}: {problems[0]}")
        callbacks.append(callback)
    return callbacks
