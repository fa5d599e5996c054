"""Padv2: pad an image onto a canvas of a given size (or a multiple of a divisor)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from corolla.plugins.transforms._params import channel_values, choice, size_pair


class Padv2:
    """Place the uint8 HWC image on a ``size`` ([w, h] or int) canvas filled with
    ``fill_value`` (RGB), or, without ``size``, on the smallest canvas whose sides are
    multiples of ``size_divisor``.

    ``pad_mode`` says where the image goes: 0 top-left, 1 centred (rounded towards the
    top-left), 2 bottom-right, -1 at ``offsets`` ``[x, y]``. The image must fit.

    Differs from PaddleClas, which returns a float32 canvas: the canvas stays uint8 as
    every op before NormalizeImage expects, so a fractional ``fill_value`` (its default
    127.5) is rounded.
    """

    def __init__(self, size: Any = None, size_divisor: int = 32, pad_mode: int = 0,
                 offsets: Sequence[int] | None = None, fill_value: Any = (127.5, 127.5, 127.5)) -> None:
        self.size = size_pair(size, "size") if size is not None else None
        if isinstance(size_divisor, bool) or not isinstance(size_divisor, int) or size_divisor < 1:
            raise ValueError(f"size_divisor: expected a positive integer, found {size_divisor!r}")
        self.size_divisor = size_divisor
        self.pad_mode = choice(pad_mode, "pad_mode", (-1, 0, 1, 2))
        if pad_mode == -1 and not (isinstance(offsets, (list, tuple)) and len(offsets) == 2
                                   and all(isinstance(v, int) and v >= 0 for v in offsets)):
            raise ValueError(f"offsets: pad_mode -1 needs [x, y] offsets of non-negative integers, found {offsets!r}")
        self.offsets = tuple(offsets) if offsets is not None else None
        fill = fill_value if isinstance(fill_value, (list, tuple)) else [fill_value] * 3
        self.fill = np.clip(np.floor(np.array(channel_values(fill, "fill_value")) + 0.5), 0, 255).astype(np.uint8)

    def canvas_size(self, width: int, height: int) -> tuple[int, int]:
        """The canvas (w, h) for a ``width`` x ``height`` image."""
        if self.size is not None:
            return self.size
        divisor = self.size_divisor
        return -(-width // divisor) * divisor, -(-height // divisor) * divisor

    def __call__(self, img: np.ndarray) -> np.ndarray:
        height, width = img.shape[:2]
        w, h = self.canvas_size(width, height)
        if self.pad_mode == -1:
            x, y = self.offsets
        else:
            x, y = {0: (0, 0), 1: ((w - width) // 2, (h - height) // 2), 2: (w - width, h - height)}[self.pad_mode]
        if x + width > w or y + height > h:
            raise ValueError(f"a {width}x{height} image at ({x}, {y}) does not fit on the {w}x{h} canvas; "
                             "resize it first or give a larger size")
        canvas = np.empty((h, w, img.shape[2]), np.uint8)
        canvas[:] = self.fill[: img.shape[2]]
        canvas[y:y + height, x:x + width] = img
        return canvas
