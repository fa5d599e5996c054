"""BalancedAccuracy: the mean over classes of each class's recall."""
from __future__ import annotations

from typing import Any

import numpy as np

from corolla.api import pick_output


class BalancedAccuracy:
    """Mean per-class recall over the classes seen since ``reset`` (unlabeled rows, -1, and
    soft labels are ignored), reported as ``balanced_acc``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.hits: dict[int, int] = {}
        self.seen: dict[int, int] = {}

    def update(self, outputs: Any, labels: Any) -> dict[str, float]:
        labels = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
        if labels.dtype.kind == "f":
            return {}
        labels = labels.reshape(-1)
        predicted = pick_output(outputs).numpy().argmax(axis=-1)
        for label, guess in zip(labels[labels >= 0], predicted[labels >= 0]):
            self.seen[int(label)] = self.seen.get(int(label), 0) + 1
            self.hits[int(label)] = self.hits.get(int(label), 0) + int(guess == label)
        return {}

    def result(self) -> dict[str, float]:
        if not self.seen:
            return {}
        return {"balanced_acc": float(np.mean([self.hits[c] / n for c, n in self.seen.items()]))}
