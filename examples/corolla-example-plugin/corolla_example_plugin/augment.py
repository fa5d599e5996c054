"""RandomGrayscale: an in-house augmentation."""
import numpy as np

from corolla.api import generator


class RandomGrayscale:
    """With probability ``prob``, replace a uint8 HWC image by its grey version (3 channels kept)."""

    def __init__(self, prob: float = 0.2) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob: expected a number in [0, 1], found {prob}")
        self.prob = prob

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if generator().random() >= self.prob:  # corolla's generator: reseeded per epoch and worker
            return img
        grey = img @ np.array([0.299, 0.587, 0.114])
        return np.repeat(grey[..., None], 3, axis=2).round().astype(np.uint8)
