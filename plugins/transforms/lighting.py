"""PCALighting: AlexNet's PCA lighting noise (Krizhevsky et al. 2012), as the DBB ResNet config uses it."""
from __future__ import annotations

from typing import Any

import numpy as np

from corolla.api import generator

#: ImageNet's RGB covariance: eigenvalues and eigenvectors (columns), on the [0, 1] scale
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


class PCALighting:
    """Add ``255 * V (a * e)`` to every pixel's RGB, with ``a`` drawn per image from
    ``N(0, alphastd^2)`` per component, ``e`` the eigenvalues and ``V`` the eigenvectors of
    the pixel covariance (ImageNet's by default); uint8 in and out.

    Differs from PaddleClas, which adds the shift computed on the [0, 1] scale to 0-255
    pixels, where it is too small to change anything; here it is scaled to the pixel
    range, as in the reference implementation (on [0, 1] tensors).
    """

    def __init__(self, alphastd: float = 0.1, eigval: Any = IMAGENET_EIGVAL, eigvec: Any = IMAGENET_EIGVEC) -> None:
        if isinstance(alphastd, bool) or not isinstance(alphastd, (int, float)) or alphastd < 0:
            raise ValueError(f"alphastd: expected a number >= 0, found {alphastd!r}")
        self.alphastd = float(alphastd)
        self.eigval = np.asarray(eigval, dtype=np.float64)
        self.eigvec = np.asarray(eigvec, dtype=np.float64)
        if self.eigval.shape != (3,) or self.eigvec.shape != (3, 3):
            raise ValueError(f"eigval, eigvec: expected 3 values and a 3x3 matrix, found {eigval!r} and {eigvec!r}")

    def shift(self, alpha: np.ndarray) -> np.ndarray:
        """The RGB shift (0-255 scale) for the draw ``alpha``."""
        return 255.0 * self.eigvec @ (alpha * self.eigval)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.alphastd == 0:
            return img
        shift = self.shift(generator().normal(0.0, self.alphastd, size=3))
        return np.clip(np.rint(img + shift), 0, 255).astype(np.uint8)
