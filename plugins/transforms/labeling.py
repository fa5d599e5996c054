"""Transforms that make the label they train for (PULC's clarity and image orientation tasks):
BlurImage and RandomRot90. Each returns a :class:`corolla.api.LabeledImage`; a
``CustomLabelDataset`` with ``label_key`` takes its label from it."""
from __future__ import annotations

import numpy as np
from PIL import Image

from corolla.api import LabeledImage, generator


def _odd_sizes(maximum: int, name: str) -> np.ndarray:
    """The kernel sizes 5, 7, ... below ``maximum``, as PaddleClas draws them."""
    if isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < 6:
        raise ValueError(f"{name}: expected an integer >= 6 (kernel sizes 5, 7, ... below it), found {maximum!r}")
    return np.arange(5, maximum, 2)


def correlate(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``img`` (HWC) correlated with a 2-D ``kernel``, borders reflected (OpenCV's filter2D), float32."""
    kh, kw = kernel.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(img.astype(np.float32), ((top, kh - 1 - top), (left, kw - 1 - left), (0, 0)), mode="reflect")
    out = np.zeros(img.shape, np.float32)
    height, width = img.shape[:2]
    for y, x in zip(*np.nonzero(kernel)):
        out += kernel[y, x] * padded[y:y + height, x:x + width]
    return out


def gaussian_kernel(size: int) -> np.ndarray:
    """OpenCV's Gaussian of odd ``size`` with the sigma it derives: ``0.3 ((size - 1) / 2 - 1) + 0.8``."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    taps = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma * sigma))
    return (taps / taps.sum()).astype(np.float32)


def motion_kernel(size: int, angle: float) -> np.ndarray:
    """A ``size`` x ``size`` line of total weight 1: the diagonal rotated by ``angle`` degrees."""
    line = Image.fromarray(np.eye(size, dtype=np.float32), mode="F")
    kernel = np.asarray(line.rotate(angle, resample=Image.BILINEAR, center=(size / 2, size / 2)), dtype=np.float32)
    return kernel / size


class BlurImage:
    """With probability ``ratio`` blur the image and label it 1, else leave it and label it 0
    (label key ``blur_image``). A blur is Gaussian or motion, each half the time:

    - Gaussian: kernel sizes (width and height) drawn from 5, 7, ... below ``gaussian_max_ksize``;
    - motion: a line of length drawn from 5, 7, ... below ``motion_max_ksize``, at an angle
      drawn from ``-motion_max_angle`` .. ``motion_max_angle - 1`` degrees, the result then
      stretched to the full 0-255 range.

    As PaddleClas's PULC clarity recipe; the kernels are built with PIL and NumPy rather
    than OpenCV, so pixels may differ slightly.
    """

    makes_labels = ("blur_image",)

    def __init__(self, ratio: float = 0.5, motion_max_ksize: int = 12, motion_max_angle: int = 45,
                 gaussian_max_ksize: int = 12) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise ValueError(f"ratio: expected a probability in [0, 1], found {ratio!r}")
        if isinstance(motion_max_angle, bool) or not isinstance(motion_max_angle, int) or motion_max_angle < 1:
            raise ValueError(f"motion_max_angle: expected a positive integer, found {motion_max_angle!r}")
        self.ratio = float(ratio)
        self.motion_sizes = _odd_sizes(motion_max_ksize, "motion_max_ksize")
        self.gaussian_sizes = _odd_sizes(gaussian_max_ksize, "gaussian_max_ksize")
        self.motion_max_angle = motion_max_angle

    def __call__(self, img: np.ndarray) -> LabeledImage:
        rng = generator()
        if rng.random() >= self.ratio:
            return LabeledImage(img, {"blur_image": 0})
        if rng.random() < 0.5:
            kx, ky = (int(rng.choice(self.gaussian_sizes)) for _ in range(2))
            blurred = correlate(img, np.outer(gaussian_kernel(ky), gaussian_kernel(kx)))
            return LabeledImage(np.clip(np.rint(blurred), 0, 255).astype(np.uint8), {"blur_image": 1})
        size = int(rng.choice(self.motion_sizes))
        angle = float(rng.integers(-self.motion_max_angle, self.motion_max_angle))
        blurred = correlate(img, motion_kernel(size, angle))
        low, high = float(blurred.min()), float(blurred.max())
        stretched = (blurred - low) * (255.0 / (high - low)) if high > low else np.zeros_like(blurred)
        return LabeledImage(np.rint(stretched).astype(np.uint8), {"blur_image": 1})


class RandomRot90:
    """Rotate by 0, 90, 180 or 270 degrees counter-clockwise, each a quarter of the time, and
    label the image 0, 1, 2 or 3 accordingly (label key ``random_rot90_orientation``). Works
    on HWC images, uint8 or float (PaddleClas's config puts it after NormalizeImage)."""

    makes_labels = ("random_rot90_orientation",)
    layout = "hwc"

    def __call__(self, img: np.ndarray) -> LabeledImage:
        turns = int(generator().integers(4))
        return LabeledImage(np.rot90(img, turns) if turns else img, {"random_rot90_orientation": turns})
