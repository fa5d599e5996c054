"""How the engine and the console logger show numbers and progress."""
from __future__ import annotations

import sys
from typing import Any, Iterable, Mapping

from tqdm import tqdm

#: step-log keys printed on their own, not in the list of values
_SEPARATE = {"batch_size", "images_per_sec", "lr"}


def format_values(values: Mapping[str, float]) -> str:
    """``loss: 0.6931, top1: 0.5000``, in the given order (the EMA model's ``ema_`` values too)."""
    return ", ".join(f"{k}: {v:.4f}" for k, v in values.items() if k.removeprefix("ema_") not in _SEPARATE)


def progress(iterable: Iterable[Any], *, total: int | None, desc: str, enabled: bool) -> Iterable[Any]:
    """A tqdm bar with rate and ETA, shown only when ``enabled`` and stderr is a terminal."""
    show = enabled and sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, disable=not show)
