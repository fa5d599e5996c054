"""Reading transform parameters as PaddleClas configs write them, without eval."""
from __future__ import annotations

import re
from typing import Any, Sequence

from PIL import Image

_FRACTION = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?))?\s*$")

#: interpolation names of PaddleClas's PIL backend
PIL_FILTERS: dict[str, int] = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "box": Image.BOX,
    "lanczos": Image.LANCZOS,
    "hamming": Image.HAMMING,
}


def number(value: Any, name: str) -> float:
    """A number, or a fraction string such as ``"1.0/255.0"`` (PaddleClas evals these; we parse them)."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number, found {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _FRACTION.match(value)
        if match:
            numerator, denominator = match.groups()
            if denominator is None:
                return float(numerator)
            if float(denominator) != 0:
                return float(numerator) / float(denominator)
    raise ValueError(f"{name}: expected a number or a fraction like '1.0/255.0', found {value!r}")


def probability(value: Any, name: str) -> float:
    p = number(value, name)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], found {value!r}")
    return p


def size_pair(value: Any, name: str) -> tuple[int, int]:
    """``(width, height)`` from an int or a two-item list, as PaddleClas's ``size``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{name}: expected a positive int or [width, height], found {value!r}")


def number_range(value: Any, name: str) -> tuple[float, float]:
    """A ``[low, high]`` pair of numbers with ``low <= high``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{name}: expected [low, high], found {value!r}")
    low, high = number(value[0], name), number(value[1], name)
    if low > high:
        raise ValueError(f"{name}: expected low <= high, found {value!r}")
    return low, high


def channel_values(value: Any, name: str, channels: int = 3) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != channels:
        raise ValueError(f"{name}: expected a list of {channels} numbers, found {value!r}")
    return tuple(number(v, name) for v in value)


def pil_filter(value: Any, name: str, default: int = Image.BILINEAR) -> int:
    """A PIL resampling filter from a PaddleClas interpolation name (None: ``default``)."""
    if value is None:
        return default
    if isinstance(value, str) and value.lower() in PIL_FILTERS:
        return PIL_FILTERS[value.lower()]
    raise ValueError(f"{name}: expected one of {', '.join(PIL_FILTERS)}, found {value!r}")


def choice(value: Any, name: str, options: Sequence[Any]) -> Any:
    if value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(repr(o) for o in options)}, found {value!r}")
    return value
