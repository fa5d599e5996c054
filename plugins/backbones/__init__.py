"""Built-in backbones. Each family lives in its own module (which imports Paddle) and
names its models once, in its ``VARIANTS`` table; this plugin registers every family
module of the package lazily, reading those names from the source, so that listing
them never imports Paddle."""
from __future__ import annotations

import pkgutil

from corolla.api import Alias, hookimpl, lazy, lazy_variants

#: modules without a VARIANTS table (composites, feature transforms) -> the names they build
_FAMILIES: dict[str, tuple[str, ...]] = {
    "distillation": ("DistillationModel",),
    "afd_attention": ("AttentionModel", "LinearTransformStudent", "LinearTransformTeacher"),
}

#: older names (seed 002's model zoo) -> current name
_ALIASES: dict[str, str] = {
    "SE154_vd": "SENet154_vd",
    "GoogleNet": "GoogLeNet",
    "ShuffleNetV2": "ShuffleNetV2_x1_0",
}


@hookimpl
def corolla_backbones() -> dict:
    table: dict = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        if module.name in _FAMILIES:
            table.update(lazy(f"{__name__}.{module.name}", *_FAMILIES[module.name]))
        else:
            table.update(lazy_variants(f"{__name__}.{module.name}"))
    table.update({old: Alias(new) for old, new in _ALIASES.items()})
    return table
