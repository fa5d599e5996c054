"""Batch transforms: MixupOperator, CutmixOperator and OpSampler, on NCHW float batches.

Each is called as ``op(images, labels) -> (images, labels)``. Integer labels
become float32 soft labels ``[N, class_num]``; soft or multi-hot labels
(``[N, C]``) are mixed as they are. Unlabeled samples (label -1) cannot be
mixed and are an error.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from corolla.api import DataError, build_batch_transform, current_registry, generator
from corolla.plugins.transforms._params import number, probability


class _Mixer:
    """Shared by Mixup and Cutmix: checks, and the mixed targets."""

    name = "batch transform"

    def __init__(self, class_num: int | None, alpha: Any) -> None:
        if class_num is None:
            raise ValueError("class_num is missing: set Arch.class_num (the loader passes it on) or give class_num")
        if isinstance(class_num, bool) or not isinstance(class_num, int) or class_num < 1:
            raise ValueError(f"class_num: expected an integer >= 1, found {class_num!r}")
        self.class_num = class_num
        self.alpha = number(alpha, "alpha")
        if self.alpha <= 0:
            raise ValueError(f"alpha: expected a number > 0, found {alpha!r}")

    def draw(self, batch_size: int) -> tuple[np.ndarray, float]:
        """The partner of each sample (a permutation) and ``lam ~ Beta(alpha, alpha)``."""
        rng = generator()
        order = rng.permutation(batch_size)
        return order, float(rng.beta(self.alpha, self.alpha))

    def mixed_targets(self, labels: np.ndarray, order: np.ndarray, lam: float) -> np.ndarray:
        """``lam * y + (1 - lam) * y[order]`` with integer labels one-hot encoded."""
        targets = labels.astype(np.float32) if labels.ndim == 2 else self._one_hot(labels)
        return (lam * targets + (1.0 - lam) * targets[order]).astype(np.float32)

    def _one_hot(self, labels: np.ndarray) -> np.ndarray:
        if labels.size and labels.min() < 0:
            raise DataError(f"{self.name} needs a label for every sample, but the batch has unlabeled samples "
                            "(label -1); do not use batch_transform_ops with unlabeled list lines")
        if labels.size and labels.max() >= self.class_num:
            raise DataError(f"{self.name}: label {int(labels.max())} is out of range for class_num={self.class_num}")
        return np.eye(self.class_num, dtype=np.float32)[labels]


class MixupOperator(_Mixer):
    """Mixup (Zhang et al. 2018): ``x = lam * x + (1 - lam) * x[perm]``, ``lam ~ Beta(alpha, alpha)``."""

    name = "MixupOperator"

    def __init__(self, class_num: int | None = None, alpha: Any = 1.0) -> None:
        super().__init__(class_num, alpha)

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order, lam = self.draw(len(images))
        mixed = (lam * images + (1.0 - lam) * images[order]).astype(images.dtype, copy=False)
        return mixed, self.mixed_targets(labels, order, lam)


class CutmixOperator(_Mixer):
    """CutMix (Yun et al. 2019): paste a box of area ``1 - lam`` from ``x[perm]``, ``lam ~ Beta(alpha, alpha)``;
    the targets use the box's actual (border-clipped) area."""

    name = "CutmixOperator"

    def __init__(self, class_num: int | None = None, alpha: Any = 0.2) -> None:
        super().__init__(class_num, alpha)

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order, lam = self.draw(len(images))
        rng = generator()
        height, width = images.shape[2], images.shape[3]
        cut = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * cut), int(width * cut)
        cy, cx = int(rng.integers(height)), int(rng.integers(width))
        y1, y2 = np.clip((cy - cut_h // 2, cy + cut_h // 2), 0, height)
        x1, x2 = np.clip((cx - cut_w // 2, cx + cut_w // 2), 0, width)
        mixed = images.copy()
        mixed[:, :, y1:y2, x1:x2] = images[order, :, y1:y2, x1:x2]
        lam = 1.0 - float((y2 - y1) * (x2 - x1)) / (height * width)
        return mixed, self.mixed_targets(labels, order, lam)


class OpSampler:
    """Apply one of several batch transforms per batch, chosen by their ``prob``
    (the remaining probability applies none), e.g.
    ``OpSampler: {MixupOperator: {alpha: 0.2, prob: 0.5}, CutmixOperator: {alpha: 1.0, prob: 0.5}}``.
    """

    def __init__(self, class_num: int | None = None, **op_dict: Any) -> None:
        registry = current_registry()
        self.ops: list[Any] = []
        weights: list[float] = []
        for name, params in op_dict.items():
            params = dict(params or {})
            if "prob" not in params:
                raise ValueError(f"{name}: give its 'prob' (the chance it is chosen)")
            weights.append(probability(params.pop("prob"), f"{name}.prob"))
            self.ops.append(build_batch_transform(registry, name, params, key_path=f"OpSampler.{name}",
                                                  class_num=class_num))
        if sum(weights) > 1.0 + 1e-9:
            raise ValueError(f"the probabilities of the operators add up to {sum(weights):g}, more than 1")
        self.ops.append(None)
        weights.append(max(0.0, 1.0 - sum(weights)))
        self.weights = np.array(weights) / sum(weights)

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        op = self.ops[int(generator().choice(len(self.ops), p=self.weights))]
        return (images, labels) if op is None else op(images, labels)
