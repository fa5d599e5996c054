"""Model outputs: how losses and metrics find the tensor they need in what a model returned.

A backbone returns logits, or a dict ``{"logits": ..., "stage2": ...}`` when asked for
intermediate features (``return_stages``). A ``DistillationModel`` returns
:class:`ModelOutputs`, a dict keyed by sub-model name (``{"Teacher": ..., "Student": ...}``)
that also says which sub-model predicts (``primary``, its ``infer_model_name``), so that a
plain ``CELoss`` or ``TopkAcc`` works on it with no special case in the engine.
"""
from __future__ import annotations

from typing import Any, Mapping

from corolla.plugin.errors import ConfigError


class ModelOutputs(dict):
    """Outputs keyed by sub-model name; ``primary`` names the sub-model that predicts."""

    def __init__(self, outputs: Mapping[str, Any], *, primary: str) -> None:
        super().__init__(outputs)
        if primary not in self:
            raise ValueError(f"primary output {primary!r} is not one of {', '.join(self)}")
        self.primary = primary


def pick_output(outputs: Any, *, model_name: str | None = None, key: str | None = None) -> Any:
    """The tensor a loss or metric reads from ``outputs``.

    ``model_name`` selects a sub-model's output (default: the primary one of a
    :class:`ModelOutputs`); ``key`` selects a named output of it (default: ``"logits"``
    when the output is a dict). A plain tensor with neither given is returned as is.
    Raises :class:`ConfigError` naming what was asked and what exists.
    """
    out = outputs
    if model_name is not None:
        out = _lookup(out, model_name, "model output", "Arch.models")
    elif isinstance(out, ModelOutputs):
        out = out[out.primary]
    if key is not None:
        return _lookup(out, key, "named output", "the backbone's return_stages")
    if isinstance(out, Mapping):
        return _lookup(out, "logits", "named output", "key: ...")
    return out


def _lookup(node: Any, name: str, what: str, hint: str) -> Any:
    if not isinstance(node, Mapping):
        raise ConfigError(
            f"{what} {name!r} asked for, but the model returned a single {type(node).__name__}, "
            f"not a dict of named outputs (check {hint})"
        )
    if name not in node:
        raise ConfigError(f"{what} {name!r} not found; the model returned: {', '.join(map(str, node)) or 'nothing'} (check {hint})")
    return node[name]
