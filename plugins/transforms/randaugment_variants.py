"""PaddleClas's RandAugment variants: RandAugmentV2 (EfficientNetV2) and RandAugmentV3 (MobileViTV2/V3).

Like ``RandAugment``, each applies ``num_layers`` operations drawn uniformly (with
replacement), all at ``magnitude`` out of 10; they differ in the operation set and in how
the magnitude maps to each operation's argument.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from corolla.api import generator
from corolla.plugins.transforms import pil_ops
from corolla.plugins.transforms._params import channel_values, pil_filter

Op = Callable[[Image.Image], Image.Image]
#: RandAugmentV2's largest magnitude (EfficientNetV2's progressive schedule reaches 15)
MAX_V2 = 20.0


def _sign() -> int:
    return 1 if generator().integers(2) else -1


def _magnitude(value: Any, name: str = "magnitude", top: float = 10.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
        raise ValueError(f"{name}: expected a number in [0, {top:g}], found {value!r}")
    return float(value)


def _layers(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"num_layers: expected an integer >= 0, found {value!r}")
    return value


def cutout(img: Image.Image, half: int, fill: int) -> Image.Image:
    """Fill the square of half-side ``half`` around a uniformly drawn centre (clipped to the image)."""
    array = np.array(img)
    height, width = array.shape[:2]
    rng = generator()
    cy, cx = int(rng.integers(0, height + 1)), int(rng.integers(0, width + 1))
    array[max(0, cy - half):cy + half, max(0, cx - half):cx + half] = fill
    return Image.fromarray(array)


def _rotate_with_gray(img: Image.Image, degrees: float) -> Image.Image:
    """Rotate (nearest) with the uncovered corners gray (128), as PaddleClas's ``rotate_with_fill``."""
    rotated = img.convert("RGBA").rotate(degrees)
    return Image.composite(rotated, Image.new("RGBA", rotated.size, (128,) * 4), rotated).convert(img.mode)


class _RandAugmentVariant:
    """Shared loop: ``num_layers`` draws from ``self.ops`` (name -> op)."""

    ops: dict[str, Op]

    def __init__(self, num_layers: int) -> None:
        self.num_layers = _layers(num_layers)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return pil_ops.on_array(self._apply_layers, img)

    def _apply_layers(self, image: Image.Image) -> Image.Image:
        names = list(self.ops)
        for _ in range(self.num_layers):
            image = self.ops[names[int(generator().integers(len(names)))]](image)
        return image


class RandAugmentV2(_RandAugmentVariant):
    """EfficientNetV2's RandAugment (PaddleClas's RandAugmentV2), with ``l = magnitude / 10``:
    shear ``0.3 l`` and translation by ``100 l`` pixels (signed, nearest, ``fillcolor``),
    rotation by ``30 l`` degrees (signed, gray corners), colour / contrast / sharpness /
    brightness factor ``1.8 l + 0.1``, posterize to ``int(4 l)`` bits, solarize at
    ``int(256 l)``, solarize-add ``int(110 l)``, cutout of half-side ``int(40 l)``, and
    autocontrast, equalize, invert.

    The magnitude may exceed 10 (EfficientNetV2 trains up to 15). ``progress_magnitude``
    (one magnitude per stage of PaddleClas's progressive training) is accepted and checked;
    the magnitude used throughout is ``magnitude``.
    """

    def __init__(self, num_layers: int = 2, magnitude: Any = 5, progress_magnitude: Sequence[float] | None = None,
                 fillcolor: Any = (128, 128, 128)) -> None:
        super().__init__(num_layers)
        level = _magnitude(magnitude, top=MAX_V2) / 10
        if progress_magnitude is not None and not (isinstance(progress_magnitude, (list, tuple)) and progress_magnitude
                                                   and all(_magnitude(m, "progress_magnitude", MAX_V2) >= 0
                                                           for m in progress_magnitude)):
            raise ValueError(f"progress_magnitude: expected a list of magnitudes, found {progress_magnitude!r}")
        fill = tuple(int(v) for v in channel_values(fillcolor, "fillcolor"))
        factor = 1.8 * level + 0.1
        self.ops = {
            "shearX": lambda img: pil_ops.shear_x(img, 0.3 * level * _sign(), resample=Image.NEAREST, fill=fill),
            "shearY": lambda img: pil_ops.shear_y(img, 0.3 * level * _sign(), resample=Image.NEAREST, fill=fill),
            "translateX": lambda img: pil_ops.translate_x(img, 100 * level * _sign(), fill=fill),
            "translateY": lambda img: pil_ops.translate_y(img, 100 * level * _sign(), fill=fill),
            "rotate": lambda img: _rotate_with_gray(img, 30 * level * _sign()),
            "color": lambda img: pil_ops.color(img, factor),
            "posterize": lambda img: pil_ops.posterize(img, int(4 * level)),
            "solarize": lambda img: pil_ops.solarize(img, int(256 * level)),
            "solarize_add": lambda img: pil_ops.solarize_add(img, int(110 * level)),
            "contrast": lambda img: pil_ops.contrast(img, factor),
            "sharpness": lambda img: pil_ops.sharpness(img, factor),
            "brightness": lambda img: pil_ops.brightness(img, factor),
            "autocontrast": pil_ops.auto_contrast,
            "equalize": pil_ops.equalize,
            "invert": pil_ops.invert,
            "cutout": lambda img: cutout(img, int(40 * level), fill[0]),
        }


class RandAugmentV3(_RandAugmentVariant):
    """MobileViTV2's RandAugment (PaddleClas's RandAugmentV3), with ``l = magnitude / 10``:
    shear ``0.3 l``, translation by ``150/331 l`` of the size and rotation by ``30 l``
    degrees (all signed, with ``interpolation`` and ``fillcolor``), colour / contrast /
    sharpness / brightness factor ``1 +- 0.9 l``, posterize to ``8 - int(4 l)`` bits,
    solarize at ``255 (1 - l)``, and autocontrast, equalize, invert.
    """

    def __init__(self, num_layers: int = 2, magnitude: Any = 3, fillcolor: Any = (0, 0, 0),
                 interpolation: str = "bicubic") -> None:
        super().__init__(num_layers)
        level = _magnitude(magnitude) / 10
        fill = tuple(int(v) for v in channel_values(fillcolor, "fillcolor"))
        resample = pil_filter(interpolation, "interpolation")
        enhance = 0.9 * level
        self.ops = {
            "shearX": lambda img: pil_ops.shear_x(img, 0.3 * level * _sign(), resample=resample, fill=fill),
            "shearY": lambda img: pil_ops.shear_y(img, 0.3 * level * _sign(), resample=resample, fill=fill),
            "translateX": lambda img: pil_ops.translate_x(img, 150 / 331 * level * img.size[0] * _sign(),
                                                          resample=resample, fill=fill),
            "translateY": lambda img: pil_ops.translate_y(img, 150 / 331 * level * img.size[1] * _sign(),
                                                          resample=resample, fill=fill),
            "rotate": lambda img: pil_ops.rotate(img, 30 * level * _sign(), resample=resample, fill=fill),
            "color": lambda img: pil_ops.color(img, 1 + enhance * _sign()),
            "posterize": lambda img: pil_ops.posterize(img, 8 - int(4 * level)),
            "solarize": lambda img: pil_ops.solarize(img, 255 * (1 - level)),
            "contrast": lambda img: pil_ops.contrast(img, 1 + enhance * _sign()),
            "sharpness": lambda img: pil_ops.sharpness(img, 1 + enhance * _sign()),
            "brightness": lambda img: pil_ops.brightness(img, 1 + enhance * _sign()),
            "autocontrast": pil_ops.auto_contrast,
            "equalize": pil_ops.equalize,
            "invert": pil_ops.invert,
        }
