"""Checks the backbone families share: of architecture arguments, each raising a
:class:`ComponentArgumentError` that names the model (``name``), the argument and the value,
and of the input size of models built for one size."""
from __future__ import annotations

from typing import Any, Sequence

import paddle

from corolla.api import ComponentArgumentError


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_rate(name: str, key: str, value: float) -> float:
    """``value`` as a float, if it is a dropout or drop-path rate: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ComponentArgumentError(f"{name}: {key} must be a number in [0, 1); got {value!r}")
    return float(value)


def check_rates(name: str, **rates: float) -> None:
    """:func:`check_rate` of every keyword argument."""
    for key, value in rates.items():
        check_rate(name, key, value)


def check_positive_int(name: str, key: str, value: int) -> int:
    """``value``, if it is an int of at least 1."""
    if not _is_int(value) or value < 1:
        raise ComponentArgumentError(f"{name}: {key} must be a positive integer; got {value!r}")
    return value


def check_positive_ints(name: str, key: str, values: object, count: int) -> list[int]:
    """``values`` as a list, if it holds ``count`` positive ints (one per stage)."""
    if not isinstance(values, (list, tuple)) or len(values) != count or not all(_is_int(v) and v > 0 for v in values):
        raise ComponentArgumentError(f"{name}: {key} needs {count} positive integers, one per stage; got {values!r}")
    return list(values)


def check_choice(name: str, key: str, value: Any, choices: Sequence[Any], why: str = "") -> Any:
    """``value``, if it is one of ``choices``; ``why`` adds a reason to the error."""
    if value not in choices:
        reason = f" ({why})" if why else ""
        raise ComponentArgumentError(
            f"{name}: {key} must be one of {', '.join(map(str, choices))}; got {value!r}{reason}"
        )
    return value


def check_stride_list(name: str, stride_list: object, count: int, where: str) -> list[int | list[int]]:
    """``stride_list`` as a list of ``count`` strides, each a positive int or a
    ``[height, width]`` pair (PaddleClas's PULC text-line configs keep the width with
    ``[2, 1]``); ``where`` says which layers they stride."""
    if (
        not isinstance(stride_list, (list, tuple))
        or len(stride_list) != count
        or not all(_is_stride(s) or _is_stride_pair(s) for s in stride_list)
    ):
        raise ComponentArgumentError(
            f"{name}: stride_list needs {count} positive strides, each an int or a [height, width] pair "
            f"({where}); got {stride_list!r}"
        )
    return [list(s) if isinstance(s, (list, tuple)) else s for s in stride_list]


def check_input_size(name: str, x: paddle.Tensor, size: int, fixed: str) -> None:
    """A ``ValueError`` unless ``x`` is ``size`` x ``size`` (``fixed``: what fixes the size, e.g.
    "position embeddings"); shapes not known as ints (in a static graph) pass."""
    height, width = x.shape[2], x.shape[3]
    if isinstance(height, int) and (height, width) != (size, size):
        raise ValueError(f"{name} takes {size}x{size} images (its {fixed} are fixed); got {height}x{width}")


def _is_stride(value: object) -> bool:
    return _is_int(value) and value > 0


def _is_stride_pair(value: object) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_stride, value))
