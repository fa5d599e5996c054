"""Crops without a random area: RandomCropImage (a fixed-size window) and CropImageAtRatio
(EfficientNetV2's padded centre crop), on uint8 HWC arrays."""
from __future__ import annotations

from typing import Any

import numpy as np

from corolla.api import generator
from corolla.plugins.transforms._params import size_pair
from corolla.plugins.transforms.geometry import Resizer


class RandomCropImage:
    """A ``size`` ([w, h] or int) window at a uniformly random position, not resized
    (PaddleClas's RandomCropImage, after ``Padv2`` in the PULC attribute configs)."""

    def __init__(self, size: Any) -> None:
        self.size = size_pair(size, "size")

    def __call__(self, img: np.ndarray) -> np.ndarray:
        w, h = self.size
        img_h, img_w = img.shape[:2]
        if img_w < w or img_h < h:
            raise ValueError(f"cannot crop {w}x{h} from a {img_w}x{img_h} image; pad or resize it first (Padv2, ResizeImage)")
        rng = generator()
        top, left = int(rng.integers(0, img_h - h + 1)), int(rng.integers(0, img_w - w + 1))
        return img[top:top + h, left:left + w]


class CropImageAtRatio:
    """EfficientNetV2's evaluation crop: the centred square of side
    ``int(size / (size + pad) * short side)``, resized to ``size`` x ``size``."""

    def __init__(self, size: int, pad: int, interpolation: str | None = "bilinear") -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size: expected a positive integer, found {size!r}")
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ValueError(f"pad: expected an integer >= 0, found {pad!r}")
        self.size = size
        self.ratio = size / (size + pad)
        self.resizer = Resizer(interpolation, "pil")

    def __call__(self, img: np.ndarray) -> np.ndarray:
        height, width = img.shape[:2]
        side = max(1, int(self.ratio * min(height, width)))
        top, left = (height - side) // 2, (width - side) // 2
        return self.resizer.array(img, (self.size, self.size), (left, top, left + side, top + side))
