"""Geometric transforms on uint8 HWC arrays: resize, crops, flips, rotation (PaddleClas names and semantics)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from PIL import Image

from corolla.plugins.transforms._params import choice, number, number_range, pil_filter, size_pair
from corolla.plugins.transforms.decode import _require_cv2, load_rgb, needed_size
from corolla.api import generator

_CV2_FILTERS = ("nearest", "bilinear", "area", "bicubic", "lanczos")
_RANDOM_PIL = (Image.BILINEAR, Image.BICUBIC)


class Resizer:
    """Resize with PIL (default) or OpenCV, by PaddleClas interpolation name.

    ``interpolation`` ``None`` means bilinear; ``"random"`` picks bilinear or
    bicubic per call. PIL filters are antialiased when shrinking; OpenCV's
    are not, so the two backends give different pixels.
    """

    def __init__(self, interpolation: str | None, backend: str) -> None:
        self.backend = choice(str(backend).lower(), "backend", ("pil", "cv2"))
        self.random = interpolation == "random"
        if self.backend == "cv2":
            cv2 = _require_cv2()
            name = "bilinear" if interpolation in (None, "random") else str(interpolation).lower()
            choice(name, "interpolation", _CV2_FILTERS)
            table = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA,
                     "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
            self._cv2_filters = (cv2.INTER_LINEAR, cv2.INTER_CUBIC) if self.random else (table[name],)
        else:
            self._pil_filter = Image.BILINEAR if self.random else pil_filter(interpolation, "interpolation")

    @property
    def uses_pil(self) -> bool:
        return self.backend == "pil"

    def pil(self, image: Image.Image, size: tuple[int, int], box: Sequence[float] | None = None) -> Image.Image:
        """Resize ``box`` (left, top, right, bottom; default the whole image) of a PIL image to ``size``."""
        resample = _RANDOM_PIL[int(generator().integers(2))] if self.random else self._pil_filter
        return image.resize(size, resample, box=tuple(box) if box is not None else None)

    def array(self, img: np.ndarray, size: tuple[int, int], box: Sequence[int] | None = None) -> np.ndarray:
        """Resize an HWC array (or its integer ``box``) to ``size`` (w, h)."""
        if self.uses_pil:
            return np.asarray(self.pil(Image.fromarray(np.ascontiguousarray(img)), size, box))
        cv2 = _require_cv2()
        if box is not None:
            left, top, right, bottom = (int(v) for v in box)
            img = img[top:bottom, left:right]
        flag = self._cv2_filters[int(generator().integers(len(self._cv2_filters)))]
        return cv2.resize(np.ascontiguousarray(img), size, interpolation=flag)


class _ResizesUndecoded:
    """An op whose ``on_decode`` resizes from the opened image (PIL backend only)."""

    resizer: Resizer

    @property
    def takes_undecoded(self) -> bool:
        """Whether :meth:`on_decode` may replace decoding followed by this op."""
        return self.resizer.uses_pil


class ResizeImage(_ResizesUndecoded):
    """Resize to ``size`` ([w, h] or int), or so that the short side is ``resize_short``.

    With ``resize_short`` the other side is ``round(side * resize_short / short)``.
    ``return_numpy`` is accepted for PaddleClas configs; the result is always an array.
    """

    def __init__(self, size: Any = None, resize_short: int | None = None, interpolation: str | None = None,
                 backend: str = "pil", return_numpy: bool = True) -> None:
        if resize_short is not None and resize_short > 0:
            self.resize_short: int | None = int(resize_short)
            self.size = None
        elif size is not None:
            self.resize_short = None
            self.size = size_pair(size, "size")
        else:
            raise ValueError("give 'size' or 'resize_short' (both are missing)")
        self.resizer = Resizer(interpolation, backend)

    def target(self, width: int, height: int) -> tuple[int, int]:
        if self.resize_short is None:
            return self.size
        percent = self.resize_short / min(width, height)
        return int(round(width * percent)), int(round(height * percent))

    def __call__(self, img: np.ndarray) -> np.ndarray:
        height, width = img.shape[:2]
        return self.resizer.array(img, self.target(width, height))

    def on_decode(self, image: Image.Image) -> Image.Image:
        """Resize straight from the opened image, decoding a large JPEG at reduced scale."""
        target = self.target(*image.size)
        loaded = load_rgb(image, needed_size(image.size, image.size, target))
        return self.resizer.pil(loaded, target)


class CropImage:
    """Center crop to ``size`` ([w, h] or int); the image must be at least that large."""

    def __init__(self, size: Any) -> None:
        self.size = size_pair(size, "size")

    def __call__(self, img: np.ndarray) -> np.ndarray:
        w, h = self.size
        img_h, img_w = img.shape[:2]
        if img_w < w or img_h < h:
            raise ValueError(f"cannot crop {w}x{h} from a {img_w}x{img_h} image; resize it first (ResizeImage resize_short)")
        left, top = (img_w - w) // 2, (img_h - h) // 2
        return img[top:top + h, left:left + w]


class RandCropImage(_ResizesUndecoded):
    """Random-area, random-aspect crop resized to ``size`` (PaddleClas's RandCropImage).

    The aspect ratio is drawn from ``ratio`` (log-uniformly with
    ``use_log_aspect``), the area fraction uniformly from ``scale`` capped so
    the crop fits; the crop's corner is uniform over the valid positions.

    ``progress_size`` (one size per stage of PaddleClas's progressive training,
    ``Global.train_mode: progressive``) is accepted and checked; the crops are ``size``
    throughout.
    """

    def __init__(self, size: Any, scale: Sequence[float] | None = None, ratio: Sequence[float] | None = None,
                 interpolation: str | None = None, use_log_aspect: bool = False, backend: str = "pil",
                 progress_size: Sequence[int] | None = None) -> None:
        self.size = size_pair(size, "size")
        if progress_size is not None and not (isinstance(progress_size, (list, tuple)) and progress_size
                                              and all(size_pair(s, "progress_size") for s in progress_size)):
            raise ValueError(f"progress_size: expected a list of sizes, one per training stage, found {progress_size!r}")
        self.scale = number_range(scale if scale is not None else (0.08, 1.0), "scale")
        self.ratio = number_range(ratio if ratio is not None else (3.0 / 4.0, 4.0 / 3.0), "ratio")
        if self.ratio[0] <= 0:
            raise ValueError(f"ratio: expected positive aspect ratios, found {ratio!r}")
        self.use_log_aspect = bool(use_log_aspect)
        self.resizer = Resizer(interpolation, backend)

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Draw a crop ``(left, top, right, bottom)`` for a ``width`` x ``height`` image."""
        rng = generator()
        if self.use_log_aspect:
            aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
        else:
            aspect = rng.uniform(*self.ratio)
        bound = min((width / height) / aspect, (height / width) * aspect)
        area = width * height * rng.uniform(min(self.scale[0], bound), min(self.scale[1], bound))
        w = min(width, max(1, int(math.sqrt(area * aspect))))
        h = min(height, max(1, int(math.sqrt(area / aspect))))
        left = int(rng.integers(0, width - w + 1))
        top = int(rng.integers(0, height - h + 1))
        return left, top, left + w, top + h

    def __call__(self, img: np.ndarray) -> np.ndarray:
        height, width = img.shape[:2]
        return self.resizer.array(img, self.size, self.crop_box(width, height))

    def on_decode(self, image: Image.Image) -> Image.Image:
        """Crop and resize from the opened image, decoding at reduced scale when the crop is large."""
        full = image.size
        left, top, right, bottom = self.crop_box(*full)
        loaded = load_rgb(image, needed_size(full, (right - left, bottom - top), self.size))
        sx, sy = loaded.size[0] / full[0], loaded.size[1] / full[1]
        return self.resizer.pil(loaded, self.size, (left * sx, top * sy, right * sx, bottom * sy))


class RandFlipImage:
    """Flip with probability 0.5: ``flip_code`` 1 horizontal, 0 vertical, -1 both (OpenCV's codes)."""

    def __init__(self, flip_code: int = 1) -> None:
        self.flip_code = choice(flip_code, "flip_code", (1, 0, -1))

    def draw(self) -> int:
        """One image's choice: 1 flips it."""
        return int(generator().integers(2))

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.draw() == 0:
            return img
        if self.flip_code == 0:
            return img[::-1]
        if self.flip_code == -1:
            return img[::-1, ::-1]
        return img[:, ::-1]  # a view: the batch ops read it in place (NormalizeImage), or stack it

    def apply_device(self, batch: Any, draws: Any) -> Any:
        """Flip the images of an N-first batch Tensor whose draw is 1 (:mod:`corolla.data.device`)."""
        import paddle

        axes = {1: [2], 0: [1], -1: [1, 2]}[self.flip_code]
        chosen = (draws == 1).reshape([-1, 1, 1, 1])
        return paddle.where(chosen, paddle.flip(batch, axis=axes), batch)


class RandomRotation:
    """Rotate by an angle drawn uniformly from ``degrees`` (a number d means [-d, d]), counter-clockwise.

    Parameters as ``paddle.vision.transforms.RandomRotation``: ``interpolation``
    (nearest, bilinear, bicubic), ``expand`` (grow to hold the whole result),
    ``center`` ([x, y], default the image center), ``fill`` (value outside).
    """

    def __init__(self, degrees: Any, interpolation: str = "nearest", expand: bool = False,
                 center: Sequence[float] | None = None, fill: Any = 0) -> None:
        if isinstance(degrees, (int, float, str)) and not isinstance(degrees, bool):
            d = number(degrees, "degrees")
            if d < 0:
                raise ValueError(f"degrees: a single number must be >= 0, found {degrees!r}")
            self.degrees = (-d, d)
        else:
            self.degrees = number_range(degrees, "degrees")
        self.resample = pil_filter(choice(interpolation, "interpolation", ("nearest", "bilinear", "bicubic")), "interpolation")
        self.expand = bool(expand)
        self.center = tuple(center) if center is not None else None
        self.fill = tuple(fill) if isinstance(fill, (list, tuple)) else fill

    def __call__(self, img: np.ndarray) -> np.ndarray:
        angle = generator().uniform(*self.degrees)
        image = Image.fromarray(np.ascontiguousarray(img))
        fill = self.fill if not isinstance(self.fill, (int, float)) or image.mode == "L" else (self.fill,) * len(image.getbands())
        rotated = image.rotate(angle, resample=self.resample, expand=self.expand, center=self.center, fillcolor=fill)
        return np.asarray(rotated)
