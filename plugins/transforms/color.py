"""ColorJitter: random brightness, contrast, saturation and hue, in random order."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PIL import Image, ImageEnhance

from corolla.plugins.transforms._params import number
from corolla.api import generator


def adjust_hue(image: Image.Image, shift: float) -> Image.Image:
    """Rotate the hue by ``shift`` turns (in [-0.5, 0.5]), as paddle.vision's ``adjust_hue`` on PIL images."""
    h, s, v = image.convert("HSV").split()
    hue = np.asarray(h, dtype=np.uint8) + np.uint8(int(shift * 255) % 256)  # wraps around, as the hue circle does
    return Image.merge("HSV", (Image.fromarray(hue, "L"), s, v)).convert(image.mode)


class ColorJitter:
    """Randomly change brightness, contrast and saturation by factors in
    ``[max(0, 1 - x), 1 + x]`` and the hue by a shift in ``[-hue, hue]``, in a
    random order (``paddle.vision.transforms.ColorJitter``, wrapped by
    PaddleClas with ``prob``: the chance that the op runs at all).
    """

    def __init__(self, brightness: Any = 0.0, contrast: Any = 0.0, saturation: Any = 0.0, hue: Any = 0.0,
                 prob: Any = 1.0) -> None:
        self.brightness = _non_negative(brightness, "brightness")
        self.contrast = _non_negative(contrast, "contrast")
        self.saturation = _non_negative(saturation, "saturation")
        self.hue = number(hue, "hue")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue: expected a number in [0, 0.5], found {hue!r}")
        self.prob = min(1.0, _non_negative(prob, "prob"))  # PaddleClas's default, 2, means "always"

    def __call__(self, img: np.ndarray) -> np.ndarray:
        rng = generator()
        if rng.random() >= self.prob:
            return img
        steps: list[Callable[[Image.Image], Image.Image]] = []
        for amount, enhancer in ((self.brightness, ImageEnhance.Brightness), (self.contrast, ImageEnhance.Contrast),
                                 (self.saturation, ImageEnhance.Color)):
            if amount > 0:
                factor = rng.uniform(max(0.0, 1.0 - amount), 1.0 + amount)
                steps.append(lambda im, e=enhancer, f=factor: e(im).enhance(f))
        if self.hue > 0:
            shift = rng.uniform(-self.hue, self.hue)
            steps.append(lambda im, s=shift: adjust_hue(im, s))
        if not steps:
            return img
        image = Image.fromarray(np.ascontiguousarray(img))
        for index in rng.permutation(len(steps)):
            image = steps[index](image)
        return np.asarray(image)


def _non_negative(value: Any, name: str) -> float:
    x = number(value, name)
    if x < 0:
        raise ValueError(f"{name}: expected a number >= 0, found {value!r}")
    return x
