"""``DistillationPostProcess``: PaddleClas's post-process for distillation configs.

PaddleClas's version picks one sub-model's output (``model_name``, default ``Student``;
``key`` within it) from the distillation model's dict of outputs, then applies the
post-process named by ``func`` (default ``Topk``) with the remaining keys::

    PostProcess: {name: DistillationPostProcess, func: Topk, topk: 5, class_id_map_file: ...}

In corolla the pick has already happened: ``infer``, ``export`` and ``predict`` run the
distillation model's ``inference_model()`` (``Arch.infer_model_name``, default the
student), whose scores are what a post-process receives. So this post-process is
``func`` with its arguments; ``model_name`` and ``key`` are accepted for PaddleClas
configs. ``export`` writes it into ``inference.yml`` as it is, and ``predict`` reads it
back the same way.
"""
from __future__ import annotations

from typing import Any, Sequence

from corolla.api import ComponentSpec, ConfigError, current_registry

_WHERE = "Infer.PostProcess"


class DistillationPostProcess:
    """``func`` (a post-process name, default ``Topk``) built with the other keys, applied to
    the inference model's scores; ``model_name`` and ``key`` as in PaddleClas (see the module)."""

    def __init__(self, model_name: str = "Student", key: str | None = None, func: str = "Topk", **kwargs: Any) -> None:
        self.model_name, self.key, self.func = model_name, key, func
        spec = _inner(func, kwargs, _WHERE)
        self.inner = current_registry().build("postprocess", spec.name, spec.params, key_path=spec.key_path)

    @staticmethod
    def corolla_children(params: dict, key_path: str) -> list[tuple[str, ComponentSpec]]:
        """The ``func`` post-process with its arguments, checked by the config plan."""
        rest = {k: v for k, v in params.items() if k not in ("model_name", "key", "func")}
        return [("postprocess", _inner(params.get("func", "Topk"), rest, key_path))]

    def __call__(self, scores: Any, files: Sequence[str]) -> list[Any]:
        return self.inner(scores, files)


def _inner(func: Any, params: dict, key_path: str) -> ComponentSpec:
    if not isinstance(func, str) or not func or func == "DistillationPostProcess":
        raise ConfigError(f"{key_path}.func: expected the name of a post-process (Topk, ThreshOutput, ...), found {func!r}")
    return ComponentSpec(func, dict(params), key_path)
