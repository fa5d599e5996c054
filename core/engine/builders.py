"""Build what a job needs from the config through the registry: model, metrics,
optimizer and lr schedule, callbacks."""
from __future__ import annotations

import copy
import warnings
from typing import Any, Mapping

import paddle

from corolla.config.load import get_path
from corolla.engine.checkpoint import load_weights
from corolla.plugin.errors import ConfigError
from corolla.plugin.registry import Registry
from corolla.config.sections import GlobalSection
from corolla.config.specs import item_specs, named_spec
from corolla.config.plan import ARCH_ENGINE_KEYS


def arch_spec(config: Mapping[str, Any], settings: GlobalSection) -> tuple[str, dict]:
    """``Arch``'s name and the backbone's parameters (without the keys the engine
    reads itself); PaddleClas's ``Global.class_num`` fills a missing ``Arch.class_num``."""
    spec = named_spec(config.get("Arch"), "Arch")
    params = {k: copy.deepcopy(v) for k, v in spec.params.items() if k not in ARCH_ENGINE_KEYS}
    if settings.class_num is not None and spec.name != "DistillationModel":
        params.setdefault("class_num", settings.class_num)
    return spec.name, params


def build_model(config: Mapping[str, Any], settings: GlobalSection, registry: Registry) -> paddle.nn.Layer:
    name, params = arch_spec(config, settings)
    model = registry.build("backbone", name, params, key_path="Arch")
    if not isinstance(model, paddle.nn.Layer):
        raise ConfigError(f"Arch.name: backbone {name!r} returned {type(model).__name__}, expected a paddle.nn.Layer")
    return model


def build_trained_model(config: Mapping[str, Any], settings: GlobalSection, registry: Registry) -> paddle.nn.Layer:
    """The model with ``Global.pretrained_model`` loaded, in eval mode (for eval,
    infer and export)."""
    model = build_model(config, settings, registry)
    if settings.pretrained_model:
        load_weights(model, settings.pretrained_model, key_path="Global.pretrained_model")
    elif not get_path(config, "Arch.pretrained"):
        warnings.warn(
            "Global.pretrained_model is not set and Arch.pretrained is off: the model has random weights "
            "(set -o Global.pretrained_model=output/<Arch>/best_model)",
            UserWarning,
            stacklevel=2,
        )
    model.train(False)
    return model


def inference_model(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """The sub-model that predicts: a distillation model's ``inference_model()``, else the model."""
    pick = getattr(model, "inference_model", None)
    return pick() if callable(pick) else model


def build_metrics(config: Mapping[str, Any], mode: str, registry: Registry) -> list:
    """The metric objects of ``Metric.<mode>`` (``Train`` or ``Eval``)."""
    path = f"Metric.{mode}"
    return [registry.build("metric", s.name, s.params, key_path=s.key_path) for s in item_specs(get_path(config, path), path)]


class Trainable(paddle.nn.Layer):
    """The model and the loss side by side: what the optimizer updates (losses may
    have parameters) and what its checkpoint state is keyed by."""

    def __init__(self, model: paddle.nn.Layer, loss: paddle.nn.Layer) -> None:
        super().__init__()
        self.model = model
        self.loss = loss


def build_optimizer(
    config: Mapping[str, Any],
    trainable: paddle.nn.Layer,
    registry: Registry,
    *,
    epochs: int,
    steps_per_epoch: int,
) -> tuple[Any, Any]:
    """The ``Optimizer`` section's optimizer and its lr schedule (a float when constant)."""
    spec = named_spec(config.get("Optimizer"), "Optimizer")
    params = copy.deepcopy(spec.params)
    if "lr" not in params:
        raise ConfigError("Optimizer: missing key 'lr' (e.g. lr: {name: Cosine, learning_rate: 0.1})")
    lr = params.pop("lr")
    if isinstance(lr, Mapping):
        lr_spec = named_spec({"name": "Constant", **lr} if "name" not in lr else lr, "Optimizer.lr")
        schedule = registry.build(
            "lr_schedule",
            lr_spec.name,
            {**lr_spec.params, "epochs": epochs, "step_each_epoch": steps_per_epoch},
            key_path="Optimizer.lr",
        )
    elif isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
        schedule = registry.build(
            "lr_schedule", "Constant",
            {"learning_rate": float(lr), "epochs": epochs, "step_each_epoch": steps_per_epoch},
            key_path="Optimizer.lr",
        )
    else:
        raise ConfigError(f"Optimizer.lr: expected a mapping (name: Cosine, learning_rate: ...) or a number > 0, found {lr!r}")
    optimizer = registry.build(
        "optimizer", spec.name, {**params, "model": trainable, "learning_rate": schedule}, key_path="Optimizer"
    )
    return optimizer, schedule


def build_callbacks(settings: GlobalSection, registry: Registry) -> list:
    """The objects of ``Global.callbacks`` (plus VisualDL when ``use_visualdl``)."""
    specs = item_specs(settings.callbacks, "Global.callbacks")
    callbacks = [registry.build("callback", s.name, s.params, key_path=s.key_path) for s in specs]
    if settings.use_visualdl and not any(s.name == "VisualDL" for s in specs):
        callbacks.append(registry.build("callback", "VisualDL", {}, key_path="Global.use_visualdl"))
    return callbacks
