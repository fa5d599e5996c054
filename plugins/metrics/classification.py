"""Classification metrics named in ``Metric.Train`` / ``Metric.Eval``.

A metric object has three methods, called by the engine:

- ``update(outputs, labels) -> dict[str, float]``: take one batch (``outputs``
  as the model returns them, ``labels`` as the loader gives them) and return
  this batch's values (shown in the step log; may be empty);
- ``result() -> dict[str, float]``: the values over every batch since ``reset``;
- ``reset()``.

Unlabeled samples (label ``-1``) are ignored; a batch of soft labels (Mixup,
Cutmix) has no ground-truth class, so top-k skips it.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import paddle

from corolla.api import pick_output


def _logits(outputs: Any) -> paddle.Tensor:
    # a distillation model's outputs: its predicting model's logits (corolla.plugin.outputs)
    return pick_output(outputs)


def _hard_labels(labels: paddle.Tensor) -> np.ndarray | None:
    """Class ids as a 1-D int array, or None for soft labels."""
    array = labels.numpy() if isinstance(labels, paddle.Tensor) else np.asarray(labels)
    if (array.ndim == 2 and array.shape[1] > 1) or np.issubdtype(array.dtype, np.floating):
        return None
    return array.reshape(-1).astype(np.int64)


class TopkAcc:
    """Top-k accuracy for each ``k`` in ``topk``, reported as ``top1``, ``top5``, ...

    A sample counts as correct for ``k`` when its label is among its ``k``
    highest logits; ``k`` larger than the number of classes counts every
    labeled sample as correct (a warning says so, once).
    """

    def __init__(self, topk: int | Sequence[int] = (1, 5)) -> None:
        ks = [topk] if isinstance(topk, int) else list(topk)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(f"topk: expected positive integers, found {topk!r}")
        self.topk = ks
        self._warned = False
        self.reset()

    def reset(self) -> None:
        self.correct = {k: 0 for k in self.topk}
        self.count = 0

    def update(self, outputs: Any, labels: paddle.Tensor) -> dict[str, float]:
        classes = _hard_labels(labels)
        if classes is None:
            return {}
        scores = _logits(outputs).numpy()
        labeled = classes >= 0
        if not labeled.any():
            return {}
        scores, classes = scores[labeled], classes[labeled]
        self._warn_of_trivial_k(scores.shape[1])
        order = np.argsort(-scores, axis=1, kind="stable")[:, : max(self.topk)]
        hits = order == classes[:, None]
        batch = {}
        for k in self.topk:
            correct = int(hits[:, :k].any(axis=1).sum())
            self.correct[k] += correct
            batch[f"top{k}"] = correct / len(classes)
        self.count += len(classes)
        return batch

    def result(self) -> dict[str, float]:
        if not self.count:
            return {}
        return {f"top{k}": self.correct[k] / self.count for k in self.topk}

    def _warn_of_trivial_k(self, classes: int) -> None:
        trivial = [k for k in self.topk if k > classes]
        if trivial and not self._warned:
            self._warned = True
            names = ", ".join(f"top{k}" for k in trivial)
            warnings.warn(f"TopkAcc.topk: {names} counts every sample as correct: the model has {classes} classes "
                          f"(set topk to at most {classes})", stacklevel=3)


class DistillationTopkAcc(TopkAcc):
    """Top-k accuracy of one sub-model of a ``DistillationModel``: its outputs
    ``outputs[model_key]`` (then ``[feature_key]`` when given)."""

    def __init__(self, model_key: str, feature_key: str | None = None, topk: int | Sequence[int] = (1, 5)) -> None:
        super().__init__(topk)
        self.model_key = model_key
        self.feature_key = feature_key

    def update(self, outputs: Any, labels: paddle.Tensor) -> dict[str, float]:
        if not isinstance(outputs, Mapping) or self.model_key not in outputs:
            found = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise KeyError(f"DistillationTopkAcc: model_key {self.model_key!r} is not among the outputs {found}")
        selected = outputs[self.model_key]
        if self.feature_key is not None:
            selected = selected[self.feature_key]
        return super().update(selected, labels)


class TprAtFpr:
    """For a binary classifier: the highest true-positive rate at a threshold on
    the class-1 probability whose false-positive rate is at most ``max_fpr``
    (thresholds 0, 0.0001, ..., 0.9999, as PaddleClas). Reports ``tpr_at_fpr``
    and the ``threshold`` that reaches it."""

    def __init__(self, max_fpr: float = 1 / 1000) -> None:
        self.max_fpr = max_fpr
        self.reset()

    def reset(self) -> None:
        self.positive: list[np.ndarray] = []
        self.negative: list[np.ndarray] = []

    def update(self, outputs: Any, labels: paddle.Tensor) -> dict[str, float]:
        classes = _hard_labels(labels)
        if classes is None:
            return {}
        scores = paddle.nn.functional.softmax(_logits(outputs), axis=-1).numpy()[:, 1]
        self.positive.append(scores[classes > 0])
        self.negative.append(scores[classes == 0])
        return {}

    def result(self) -> dict[str, float]:
        positive = np.sort(np.concatenate(self.positive)) if self.positive else np.zeros(0)
        negative = np.sort(np.concatenate(self.negative)) if self.negative else np.zeros(0)
        if not len(positive):
            return {}
        thresholds = np.arange(10000) / 10000.0
        tpr = (len(positive) - np.searchsorted(positive, thresholds, side="right")) / len(positive)
        if len(negative):
            fpr = (len(negative) - np.searchsorted(negative, thresholds, side="right")) / len(negative)
            tpr = np.where(fpr <= self.max_fpr, tpr, -1.0)
        best = int(np.argmax(tpr))
        return {"tpr_at_fpr": max(float(tpr[best]), 0.0), "threshold": float(thresholds[best])}


class GoogLeNetTopkAcc(TopkAcc):
    """:class:`TopkAcc` of GoogLeNet's main logits; the auxiliary heads' outputs (training
    only) are not scored (PaddleClas's name for the GoogLeNet config)."""
