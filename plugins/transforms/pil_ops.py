"""The image operations that AutoAugment, RandAugment and TimmAutoAugment choose from (PIL, RGB)."""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

Fill = tuple[int, int, int]
ImageOp = Callable[..., Image.Image]


def shear_x(img: Image.Image, factor: float, *, resample: int = Image.BICUBIC, fill: Fill = (128, 128, 128)) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, (1, factor, 0, 0, 1, 0), resample, fillcolor=fill)


def shear_y(img: Image.Image, factor: float, *, resample: int = Image.BICUBIC, fill: Fill = (128, 128, 128)) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, factor, 1, 0), resample, fillcolor=fill)


def translate_x(img: Image.Image, pixels: float, *, resample: int = Image.NEAREST, fill: Fill = (128, 128, 128)) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, (1, 0, pixels, 0, 1, 0), resample, fillcolor=fill)


def translate_y(img: Image.Image, pixels: float, *, resample: int = Image.NEAREST, fill: Fill = (128, 128, 128)) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, pixels), resample, fillcolor=fill)


def rotate(img: Image.Image, degrees: float, *, resample: int = Image.NEAREST, fill: Fill = (128, 128, 128)) -> Image.Image:
    return img.rotate(degrees, resample=resample, fillcolor=fill)


def auto_contrast(img: Image.Image, *_: object, **__: object) -> Image.Image:
    return ImageOps.autocontrast(img)


def equalize(img: Image.Image, *_: object, **__: object) -> Image.Image:
    return ImageOps.equalize(img)


def invert(img: Image.Image, *_: object, **__: object) -> Image.Image:
    return ImageOps.invert(img)


def solarize(img: Image.Image, threshold: float, **__: object) -> Image.Image:
    """Invert every value >= ``threshold``."""
    return ImageOps.solarize(img, threshold)


def solarize_add(img: Image.Image, add: int, threshold: int = 128, **__: object) -> Image.Image:
    """Add ``add`` (clipped at 255) to every value below ``threshold``."""
    values = np.arange(256)
    table = np.where(values < threshold, np.minimum(255, values + add), values).tolist()
    return img.point(table * len(img.getbands()))


def posterize(img: Image.Image, bits: int, **__: object) -> Image.Image:
    """Keep the ``bits`` most significant bits of every value (0 bits: all zero, as timm's
    strongest increasing posterize asks; Pillow 13 refuses 0 bits)."""
    if bits >= 8:
        return img
    return ImageOps.posterize(img, int(bits)) if bits >= 1 else img.point([0] * 256 * len(img.getbands()))


def color(img: Image.Image, factor: float, **__: object) -> Image.Image:
    return ImageEnhance.Color(img).enhance(factor)


def contrast(img: Image.Image, factor: float, **__: object) -> Image.Image:
    return ImageEnhance.Contrast(img).enhance(factor)


def brightness(img: Image.Image, factor: float, **__: object) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(factor)


def sharpness(img: Image.Image, factor: float, **__: object) -> Image.Image:
    return ImageEnhance.Sharpness(img).enhance(factor)


def on_array(op: Callable[[Image.Image], Image.Image], img: np.ndarray) -> np.ndarray:
    """Run a PIL-image op on a uint8 HWC array."""
    return np.asarray(op(Image.fromarray(np.ascontiguousarray(img))))
