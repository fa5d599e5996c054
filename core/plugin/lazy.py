"""Lazy references: how a plugin names components without importing the modules that define them."""
from __future__ import annotations

import ast
import functools
import importlib.util
import os
from pathlib import Path

from corolla.plugin.errors import PluginError


def lazy(module: str, *names: str) -> dict[str, str]:
    """``{name: "module:name"}`` lazy references for a plugin's registration hook."""
    return {name: f"{module}:{name}" for name in names}


def lazy_variants(module: str, *, table: str = "VARIANTS", namespace: str = "BUILDERS") -> dict[str, str]:
    """Lazy references to every component that ``module`` declares in its ``VARIANTS``
    table and builds in its ``BUILDERS`` namespace (``"module:BUILDERS.Name"``).

    The names are read from the module's source, not by importing it, so that
    listing them never imports the module's heavy dependencies (Paddle): a model
    family is registered once, where it is defined. ``VARIANTS`` must be a dict
    display at the module's top level whose keys are string literals; ``BUILDERS`` an
    object with each of those names as an attribute (a ``SimpleNamespace``, not a dict).
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise PluginError(f"lazy_variants: cannot find the source of module {module!r}")
    stat = os.stat(spec.origin)
    keys = _table_keys(spec.origin, stat.st_mtime_ns, stat.st_size, table)
    return {name: f"{module}:{namespace}.{name}" for name in keys}


@functools.lru_cache(maxsize=512)
def _table_keys(origin: str, mtime_ns: int, size: int, table: str) -> tuple[str, ...]:
    """The string keys of ``table`` in the source file ``origin``; cached per file version,
    as every registry load reads the same sixty-odd family modules (2 ms each to parse)."""
    tree = ast.parse(Path(origin).read_text(encoding="utf-8"), filename=origin)
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == table and isinstance(node.value, ast.Dict):
            keys = tuple(key.value for key in node.value.keys if isinstance(key, ast.Constant) and isinstance(key.value, str))
            if len(keys) != len(node.value.keys):
                raise PluginError(f"{origin}: every key of {table} must be a string literal")
            return keys
    raise PluginError(f"{origin}: no top-level '{table} = {{...}}' dict display to read component names from")
