"""BatchGaussianNoise: a batch transform that keeps the labels."""
from __future__ import annotations

import numpy as np

from corolla.api import generator


class BatchGaussianNoise:
    """Add Gaussian noise of standard deviation ``std`` to a float32 NCHW batch (normalised
    images), to each image with probability ``prob``. Labels pass unchanged, unlabeled ones too."""

    def __init__(self, std: float = 0.1, prob: float = 0.5) -> None:
        if std < 0 or not 0.0 <= prob <= 1.0:
            raise ValueError(f"expected std >= 0 and prob in [0, 1], found std={std}, prob={prob}")
        self.std = std
        self.prob = prob

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = generator()
        chosen = rng.random(len(images)) < self.prob
        noise = rng.standard_normal(images.shape, dtype=np.float32) * self.std
        return images + noise * chosen[:, None, None, None].astype(images.dtype), labels
