"""Component specs: how a config names a component and its parameters.

Two shapes, as in PaddleClas configs::

    Arch:                      # ``name:`` plus parameters
      name: ResNet50_vd
      class_num: 102

    transform_ops:             # a list item with a single key
      - RandomErasing:
          EPSILON: 0.5
      - ToCHWImage:
"""
from __future__ import annotations

from typing import Any, Mapping

import attrs

from corolla.plugin.errors import ConfigError


@attrs.frozen
class ComponentSpec:
    """A component's config name, its parameters and where it sits in the config."""

    name: str
    params: dict
    key_path: str


def named_spec(node: Any, key_path: str) -> ComponentSpec:
    """Read a ``{name: X, **params}`` mapping."""
    if not isinstance(node, Mapping):
        raise ConfigError(f"{key_path}: expected a mapping with a 'name' key, found {node!r} ({type(node).__name__})")
    if "name" not in node:
        raise ConfigError(f"{key_path}: missing key 'name' (the component to use); found keys: {', '.join(map(str, node)) or 'none'}")
    name = node["name"]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key_path}.name: expected a component name, found {name!r}")
    params = {k: v for k, v in node.items() if k != "name"}
    return ComponentSpec(name, params, key_path)


def item_spec(node: Any, key_path: str) -> ComponentSpec:
    """Read a ``{Name: params}`` list item (``params`` may be empty or null)."""
    if isinstance(node, str):
        return ComponentSpec(node, {}, f"{key_path}.{node}")
    if isinstance(node, Mapping) and "name" in node:
        return named_spec(node, key_path)
    if not isinstance(node, Mapping) or len(node) != 1:
        raise ConfigError(
            f"{key_path}: expected a single-key mapping like '- RandomErasing: {{EPSILON: 0.5}}', found {node!r}"
        )
    (name, params), = node.items()
    path = f"{key_path}.{name}"
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{path}: expected a mapping of parameters, found {params!r} ({type(params).__name__})")
    return ComponentSpec(str(name), dict(params), path)


def item_specs(node: Any, key_path: str) -> list[ComponentSpec]:
    """Read a list of ``{Name: params}`` items; a missing list is empty."""
    if node is None:
        return []
    if not isinstance(node, list):
        raise ConfigError(f"{key_path}: expected a list of components, found {node!r} ({type(node).__name__})")
    return [item_spec(item, f"{key_path}.{i}") for i, item in enumerate(node)]
