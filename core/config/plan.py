"""Check every component a config names against the registry, before anything is built."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from corolla.plugin.arguments import check_arguments
from corolla.config.load import get_path
from corolla.plugin.registry import Registry
from corolla.config.specs import ComponentSpec, item_specs, named_spec

#: (kind, key path, shape, check arguments).
PLACES: tuple[tuple[str, str, str, bool], ...] = (
    ("backbone", "Arch", "named", True),
    ("loss", "Loss.Train", "items", True),
    ("loss", "Loss.Eval", "items", True),
    ("dataset", "DataLoader.Train.dataset", "named", True),
    ("dataset", "DataLoader.Eval.dataset", "named", True),
    ("transform", "DataLoader.Train.dataset.transform_ops", "items", True),
    ("transform", "DataLoader.Eval.dataset.transform_ops", "items", True),
    ("batch_transform", "DataLoader.Train.dataset.batch_transform_ops", "items", True),
    ("metric", "Metric.Train", "items", True),
    ("metric", "Metric.Eval", "items", True),
    ("optimizer", "Optimizer", "named", True),
    ("lr_schedule", "Optimizer.lr", "named", True),
    ("transform", "Infer.transforms", "items", True),
    ("callback", "Global.callbacks", "items", True),
)

#: Arguments the engine passes on top of a component's config keys, by kind.
ENGINE_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "optimizer": ("model", "learning_rate"),
    "lr_schedule": ("epochs", "step_each_epoch"),
}

#: ``Arch`` keys the engine reads itself (PaddleClas's names), never passed to the backbone.
ARCH_ENGINE_KEYS: tuple[str, ...] = ("use_sync_bn", "infer_add_softmax")

_READERS: dict[str, Callable[[Any, str], list[ComponentSpec]]] = {
    "named": lambda node, path: [named_spec(node, path)],
    "items": item_specs,
}


def config_components(config: Mapping[str, Any]) -> list[tuple[str, ComponentSpec, bool]]:
    """Every (kind, spec, check-arguments) that the config names, in config order."""
    found = []
    for kind, path, shape, check_args in PLACES:
        node = get_path(config, path)
        if node is None:
            continue
        if kind == "lr_schedule" and not isinstance(node, Mapping):
            continue  # a constant learning rate: ``lr: 0.1``
        if kind == "lr_schedule" and "name" not in node:
            node = {"name": "Constant", **node}  # ``lr: {learning_rate: 0.1}``, as PaddleClas
        for spec in _READERS[shape](node, path):
            if kind == "dataset":
                # the loader, not the dataset, applies batch transforms
                spec = ComponentSpec(spec.name, {k: v for k, v in spec.params.items() if k != "batch_transform_ops"}, spec.key_path)
            if kind == "backbone" and path == "Arch":
                spec = ComponentSpec(spec.name, {k: v for k, v in spec.params.items() if k not in ARCH_ENGINE_KEYS}, spec.key_path)
            if kind == "loss":  # the combiner (corolla.engine.loss) takes each item's ``weight``
                spec = ComponentSpec(spec.name, {k: v for k, v in spec.params.items() if k != "weight"}, spec.key_path)
            if kind == "optimizer":  # its ``lr`` is a component of its own
                spec = ComponentSpec(spec.name, {k: v for k, v in spec.params.items() if k != "lr"}, spec.key_path)
            found.append((kind, spec, check_args))
    return found


def validate_components(config: Mapping[str, Any], registry: Registry) -> None:
    """Resolve every named component and check its arguments; raise on the first problem."""
    for kind, spec, check_args in config_components(config):
        component = registry.resolve(kind, spec.name, key_path=spec.key_path)
        if check_args:
            params = {**spec.params, **dict.fromkeys(ENGINE_ARGUMENTS.get(kind, ()))}
            check_arguments(component.load(), params, component=component.describe(), key_path=spec.key_path)
