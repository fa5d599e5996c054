"""Checks of loss parameters shared by several losses; each raises ValueError naming the parameter."""
from __future__ import annotations

from typing import Any, Callable

import paddle
import paddle.nn.functional as F

#: ``act`` values: what is applied to outputs before comparing them.
ACTIVATIONS: dict[Any, Callable[[paddle.Tensor], paddle.Tensor]] = {
    "softmax": lambda x: F.softmax(x, axis=-1),
    "sigmoid": F.sigmoid,
    None: lambda x: x,
}


def check_act(act: Any) -> Callable[[paddle.Tensor], paddle.Tensor]:
    if act not in ACTIVATIONS:
        raise ValueError(f"act: expected 'softmax', 'sigmoid' or null, found {act!r}")
    return ACTIVATIONS[act]


def check_positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name}: expected a number > 0, found {value!r}")
    return float(value)


def check_epsilon(epsilon: float | None) -> float:
    """Label-smoothing strength: ``None`` or 0 means none; otherwise in (0, 1)."""
    if epsilon is None:
        return 0.0
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 <= epsilon < 1:
        raise ValueError(f"epsilon: expected null or a number in [0, 1), found {epsilon!r}")
    return float(epsilon)
