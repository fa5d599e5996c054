"""AutoAugment (the ImageNet policy of Cubuk et al. 2018) and RandAugment (Cubuk et al. 2019),
with PaddleClas's magnitude tables."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PIL import Image

from corolla.plugins.transforms import pil_ops
from corolla.plugins.transforms._params import channel_values
from corolla.api import generator

#: magnitude index 0..9 -> argument, per operation (PaddleClas's SubPolicy ranges)
_RANGES: dict[str, np.ndarray] = {
    "shearX": np.linspace(0, 0.3, 10),
    "shearY": np.linspace(0, 0.3, 10),
    "translateX": np.linspace(0, 150 / 331, 10),
    "translateY": np.linspace(0, 150 / 331, 10),
    "rotate": np.linspace(0, 30, 10),
    "color": np.linspace(0.0, 0.9, 10),
    "posterize": np.round(np.linspace(8, 4, 10), 0).astype(int),
    "solarize": np.linspace(256, 0, 10),
    "contrast": np.linspace(0.0, 0.9, 10),
    "sharpness": np.linspace(0.0, 0.9, 10),
    "brightness": np.linspace(0.0, 0.9, 10),
    "autocontrast": np.zeros(10),
    "equalize": np.zeros(10),
    "invert": np.zeros(10),
}

#: (probability, operation, magnitude index) pairs: the 25 ImageNet sub-policies
IMAGENET_POLICY: tuple[tuple[tuple[float, str, int], tuple[float, str, int]], ...] = (
    ((0.4, "posterize", 8), (0.6, "rotate", 9)),
    ((0.6, "solarize", 5), (0.6, "autocontrast", 5)),
    ((0.8, "equalize", 8), (0.6, "equalize", 3)),
    ((0.6, "posterize", 7), (0.6, "posterize", 6)),
    ((0.4, "equalize", 7), (0.2, "solarize", 4)),
    ((0.4, "equalize", 4), (0.8, "rotate", 8)),
    ((0.6, "solarize", 3), (0.6, "equalize", 7)),
    ((0.8, "posterize", 5), (1.0, "equalize", 2)),
    ((0.2, "rotate", 3), (0.6, "solarize", 8)),
    ((0.6, "equalize", 8), (0.4, "posterize", 6)),
    ((0.8, "rotate", 8), (0.4, "color", 0)),
    ((0.4, "rotate", 9), (0.6, "equalize", 2)),
    ((0.0, "equalize", 7), (0.8, "equalize", 8)),
    ((0.6, "invert", 4), (1.0, "equalize", 8)),
    ((0.6, "color", 4), (1.0, "contrast", 8)),
    ((0.8, "rotate", 8), (1.0, "color", 2)),
    ((0.8, "color", 8), (0.8, "solarize", 7)),
    ((0.4, "sharpness", 7), (0.6, "invert", 8)),
    ((0.6, "shearX", 5), (1.0, "equalize", 9)),
    ((0.4, "color", 0), (0.6, "equalize", 3)),
    ((0.4, "equalize", 7), (0.2, "solarize", 4)),
    ((0.6, "solarize", 5), (0.6, "autocontrast", 5)),
    ((0.6, "invert", 4), (1.0, "equalize", 8)),
    ((0.6, "color", 4), (1.0, "contrast", 8)),
    ((0.8, "equalize", 8), (0.6, "equalize", 3)),
)


def _apply(name: str, img: Image.Image, magnitude: float, fill: tuple[int, int, int]) -> Image.Image:
    """One named operation; signed operations get a random sign (PaddleClas's SubPolicy functions)."""
    sign = 1 if generator().integers(2) else -1
    if name == "shearX":
        return pil_ops.shear_x(img, magnitude * sign, fill=fill)
    if name == "shearY":
        return pil_ops.shear_y(img, magnitude * sign, fill=fill)
    if name == "translateX":
        return pil_ops.translate_x(img, magnitude * img.size[0] * sign, fill=fill)
    if name == "translateY":
        return pil_ops.translate_y(img, magnitude * img.size[1] * sign, fill=fill)
    if name == "rotate":
        return pil_ops.rotate(img, magnitude, fill=fill)
    if name in _ENHANCERS:
        return _ENHANCERS[name](img, 1 + magnitude * sign)
    if name == "posterize":
        return pil_ops.posterize(img, int(magnitude))
    if name == "solarize":
        return pil_ops.solarize(img, magnitude)
    return _PLAIN[name](img)


_ENHANCERS: dict[str, Callable[[Image.Image, float], Image.Image]] = {
    "color": pil_ops.color,
    "contrast": pil_ops.contrast,
    "sharpness": pil_ops.sharpness,
    "brightness": pil_ops.brightness,
}
_PLAIN: dict[str, Callable[[Image.Image], Image.Image]] = {
    "autocontrast": pil_ops.auto_contrast,
    "equalize": pil_ops.equalize,
    "invert": pil_ops.invert,
}


def _fill(fillcolor: Any) -> tuple[int, int, int]:
    return tuple(int(v) for v in channel_values(fillcolor, "fillcolor"))


class AutoAugment:
    """Apply one of the 25 ImageNet sub-policies, chosen uniformly; each of its two
    operations runs with its own probability (PaddleClas's ``ImageNetPolicy``)."""

    def __init__(self, fillcolor: Any = (128, 128, 128)) -> None:
        self.fill = _fill(fillcolor)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return pil_ops.on_array(self.apply_policy, img)

    def apply_policy(self, image: Image.Image, index: int | None = None) -> Image.Image:
        """Apply sub-policy ``index`` (random when None) to a PIL image."""
        rng = generator()
        sub_policy = IMAGENET_POLICY[int(rng.integers(len(IMAGENET_POLICY))) if index is None else index]
        for prob, name, level in sub_policy:
            if rng.random() < prob:
                image = _apply(name, image, float(_RANGES[name][level]), self.fill)
        return image


class RandAugment:
    """Apply ``num_layers`` operations drawn uniformly (with replacement) from 14, all at
    ``magnitude`` out of 10 (PaddleClas's RandAugment)."""

    def __init__(self, num_layers: int = 2, magnitude: Any = 5, fillcolor: Any = (128, 128, 128)) -> None:
        if not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers: expected an integer >= 0, found {num_layers!r}")
        if isinstance(magnitude, bool) or not isinstance(magnitude, (int, float)) or not 0 <= magnitude <= 10:
            raise ValueError(f"magnitude: expected a number in [0, 10], found {magnitude!r}")
        self.num_layers = num_layers
        self.fill = _fill(fillcolor)
        level = magnitude / 10
        self.levels: dict[str, float] = {
            "shearX": 0.3 * level,
            "shearY": 0.3 * level,
            "translateX": 150.0 / 331 * level,
            "translateY": 150.0 / 331 * level,
            "rotate": 30 * level,
            "color": 0.9 * level,
            "posterize": int(4.0 * level),
            "solarize": 256.0 * level,
            "contrast": 0.9 * level,
            "sharpness": 0.9 * level,
            "brightness": 0.9 * level,
            "autocontrast": 0,
            "equalize": 0,
            "invert": 0,
        }
        self.names = list(self.levels)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return pil_ops.on_array(self._apply_layers, img)

    def _apply_layers(self, image: Image.Image) -> Image.Image:
        rng = generator()
        for _ in range(self.num_layers):
            name = self.names[int(rng.integers(len(self.names)))]
            image = _apply(name, image, self.levels[name], self.fill)
        return image
