"""DecodeImage: encoded bytes -> uint8 HWC array, with PIL (and reduced-scale JPEG decoding)."""
from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from PIL import Image

from corolla.api import UnreadableImageError
from corolla.plugins.transforms._params import choice


class DecodeImage:
    """Decode an encoded image (JPEG, PNG, BMP, ...) into a uint8 HWC array.

    ``to_rgb`` gives RGB channel order (``False``: BGR, as OpenCV decodes);
    ``channel_first`` gives CHW. Images are always converted to three
    channels. ``to_np`` is accepted for PaddleClas configs: the result is
    always a NumPy array. ``backend`` is ``"pil"``; ``"cv2"`` decodes with
    OpenCV when it is installed. EXIF orientation is not applied.

    With ``draft`` (corolla's addition, on by default), when the next op only
    needs a much smaller image (a resize, or a random crop whose region is at
    least twice the output size), the pipeline lets it decode the JPEG at 1/2,
    1/4 or 1/8 scale (PIL's ``draft``), which is several times faster; see
    :meth:`open` and :func:`load_rgb`. ``draft: false`` always decodes at full size.
    """

    decodes = True

    def __init__(self, to_rgb: bool = True, to_np: bool = True, channel_first: bool = False, backend: str = "pil",
                 draft: bool = True) -> None:
        self.to_rgb = bool(to_rgb)
        self.channel_first = bool(channel_first)
        self.draft = bool(draft)
        self.backend = choice(str(backend).lower(), "backend", ("pil", "cv2"))
        if self.backend == "cv2":
            _require_cv2()
        self.output_layout = "chw" if self.channel_first else "hwc"

    @property
    def can_defer(self) -> bool:
        """Whether the next op may receive the opened, not yet decoded PIL image."""
        return self.backend == "pil" and self.draft

    def __call__(self, data: Any) -> np.ndarray:
        if isinstance(data, np.ndarray):  # already decoded (PaddleClas accepts this too)
            return data
        if self.backend == "cv2":
            return self._finish_array(_cv2_decode(data))
        return self.finish(load_rgb(self.open(data)))

    def open(self, data: bytes) -> Image.Image:
        """Read the image header only; pixels are decoded by :func:`load_rgb`."""
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
            raise UnreadableImageError(f"expected encoded image bytes, found {type(data).__name__} of length {len(data) if hasattr(data, '__len__') else '?'}")
        try:
            return Image.open(io.BytesIO(data))
        except Image.UnidentifiedImageError:
            head = bytes(data[:8]).hex(" ")
            raise UnreadableImageError(f"cannot decode image: not an image format PIL knows (first bytes {head}), "
                                       f"{len(data)} bytes") from None
        except Exception as exc:  # PIL raises several types for broken headers
            raise UnreadableImageError(f"cannot decode image: {exc}") from None

    def finish(self, image: Image.Image) -> np.ndarray:
        """The decoded RGB image as an array in the configured channel order and layout."""
        return self._finish_array(np.asarray(image))

    def _finish_array(self, rgb: np.ndarray) -> np.ndarray:
        array = rgb if self.to_rgb else rgb[:, :, ::-1]
        return array.transpose(2, 0, 1) if self.channel_first else array


#: PIL's modes of 16-bit greyscale images (PNG, TIFF)
_WIDE_GREY = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def load_rgb(image: Image.Image, needed: tuple[int, int] | None = None) -> Image.Image:
    """Decode an opened image to RGB; a JPEG at the smallest 1/2^k scale of at least ``needed`` (w, h).

    Decoding errors (truncated or corrupt data) become :class:`UnreadableImageError`.
    """
    try:
        if needed is not None and image.format == "JPEG":
            image.draft("RGB", (max(1, needed[0]), max(1, needed[1])))
        if image.mode in _WIDE_GREY:  # convert("RGB") would clip at 255: keep the top 8 bits, as OpenCV does
            image = Image.fromarray(np.minimum(np.asarray(image, dtype=np.uint32) >> 8, 255).astype(np.uint8), "L")
        return image.convert("RGB") if image.mode != "RGB" else _loaded(image)
    except Exception as exc:
        raise UnreadableImageError(f"cannot decode image: {exc}") from None


def needed_size(full: tuple[int, int], region: tuple[float, float], target: tuple[int, int]) -> tuple[int, int]:
    """The decode size at which ``region`` (w, h) of a ``full``-size image still covers ``target`` pixels."""
    scale = min(1.0, max(target[0] / max(region[0], 1e-9), target[1] / max(region[1], 1e-9)))
    return math.ceil(full[0] * scale), math.ceil(full[1] * scale)


def _loaded(image: Image.Image) -> Image.Image:
    image.load()
    return image


def _require_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise ValueError("backend 'cv2' needs OpenCV, which is not installed "
                         "(pip install opencv-python-headless); or use backend: pil") from None
    return cv2


def _cv2_decode(data: bytes) -> np.ndarray:
    cv2 = _require_cv2()
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableImageError("cannot decode image: OpenCV could not read the data")
    return image[:, :, ::-1]  # BGR -> RGB
