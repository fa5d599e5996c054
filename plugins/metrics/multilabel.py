"""Multi-label metrics: PaddleClas's ATTRMetric (pedestrian/vehicle attributes), AccuracyScore
and HammingDistance.

Each class is predicted positive when its sigmoid probability exceeds ``threshold``. Labels
are the 0/1 flags ``[N, C]`` (``[N, 2, C]`` with ``label_ratio``: the flags are the first
row); a flag of -1 (unknown) counts nowhere.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import paddle

from corolla.api import DataError, pick_output

#: PaddleClas's guard against empty denominators
EPS = 1e-20


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"threshold: expected a probability in (0, 1), found {value!r}")
    return float(value)


def flags_and_predictions(outputs: Any, labels: Any, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(flags, predicted)``: int arrays ``[N, C]``; ``predicted`` is -1 where the flag is."""
    logits = pick_output(outputs)
    flags = labels.numpy() if isinstance(labels, paddle.Tensor) else np.asarray(labels)
    if flags.ndim == 3:
        flags = flags[:, 0]
    if flags.ndim != 2 or flags.shape[1] != logits.shape[-1] or not np.issubdtype(flags.dtype, np.floating):
        raise DataError(f"a multi-label metric needs float labels [N, {logits.shape[-1]}] (or [N, 2, "
                        f"{logits.shape[-1]}]), found {flags.dtype} {list(flags.shape)}; is the dataset a MultiLabelDataset?")
    flags = np.rint(flags).astype(np.int64)
    predicted = (1.0 / (1.0 + np.exp(-logits.numpy().astype(np.float64))) > threshold).astype(np.int64)
    predicted[flags == -1] = -1
    return flags, predicted


class ATTRMetric:
    """The attribute metrics of PaddleClas's PULC attribute tasks, over the whole set.

    Label-based, per class ``c`` (TP, TN, ... counted over all images), then averaged::

        ma               = mean_c (TP_c / P_c + TN_c / N_c) / 2        (mean accuracy: mA)
        label_pos_recall = mean_c TP_c / P_c
        label_neg_recall = mean_c TN_c / N_c
        label_f1         = mean_c 2 prec_c rec_c / (prec_c + rec_c),   prec_c = TP_c / (TP_c + FP_c)

    Instance-based, per image ``i`` with ``G_i`` its positive flags and ``Y_i`` its
    predicted positives, averaged over images::

        instance_acc    = mean_i |G_i & Y_i| / |G_i | Y_i|
        instance_prec   = mean_i |G_i & Y_i| / |Y_i|
        instance_recall = mean_i |G_i & Y_i| / |G_i|
        instance_f1     = 2 prec recall / (prec + recall)       (of the two means)

    ``ma`` comes first: it decides ``best_model``. Empty denominators count as 0.

    Differs from PaddleClas, which thresholds the raw logits at ``threshold`` (``threshold:
    0.6225``, the sigmoid of 0.5, reproduces its numbers) and computes each class's F1 with
    the recall averaged over classes rather than the class's own.
    """

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = _threshold(threshold)
        self.reset()

    def reset(self) -> None:
        self.counts: dict[str, np.ndarray] = {}
        self.instances: dict[str, list[np.ndarray]] = {"gt": [], "predicted": [], "both": [], "either": []}

    def update(self, outputs: Any, labels: Any) -> dict[str, float]:
        flags, predicted = flags_and_predictions(outputs, labels, self.threshold)
        batch = {
            "positive": flags == 1, "negative": flags == 0,
            "true_pos": (flags == 1) & (predicted == 1), "true_neg": (flags == 0) & (predicted == 0),
            "false_pos": (flags == 0) & (predicted == 1),
        }
        for name, hits in batch.items():
            self.counts[name] = self.counts.get(name, 0) + hits.sum(axis=0)
        self.instances["gt"].append((flags == 1).sum(axis=1))
        self.instances["predicted"].append((predicted == 1).sum(axis=1))
        self.instances["both"].append(batch["true_pos"].sum(axis=1))
        self.instances["either"].append(((flags == 1) | (predicted == 1)).sum(axis=1))
        return {}

    def result(self) -> dict[str, float]:
        if not self.counts:
            return {}
        c = {name: value.astype(np.float64) for name, value in self.counts.items()}
        pos_recall = c["true_pos"] / (c["positive"] + EPS)
        neg_recall = c["true_neg"] / (c["negative"] + EPS)
        precision = c["true_pos"] / (c["true_pos"] + c["false_pos"] + EPS)
        gt, predicted, both, either = (np.concatenate(v).astype(np.float64) for v in self.instances.values())
        instance_prec = float(np.mean(both / (predicted + EPS)))
        instance_recall = float(np.mean(both / (gt + EPS)))
        return {
            "ma": float(np.mean((pos_recall + neg_recall) / 2)),
            "label_f1": float(np.mean(2 * precision * pos_recall / (precision + pos_recall + EPS))),
            "label_pos_recall": float(np.mean(pos_recall)),
            "label_neg_recall": float(np.mean(neg_recall)),
            "instance_f1": 2 * instance_prec * instance_recall / (instance_prec + instance_recall + EPS),
            "instance_acc": float(np.mean(both / (either + EPS))),
            "instance_prec": instance_prec,
            "instance_recall": instance_recall,
        }


class AccuracyScore:
    """Multi-label accuracy (PaddleClas's AccuracyScore), probabilities thresholded at 0.5.

    ``base: label`` (default): the share of known flags predicted right, over every image
    and class. ``base: sample``: the share of images whose known flags are all right
    (scikit-learn's subset accuracy).
    """

    def __init__(self, base: str = "label") -> None:
        if base not in ("label", "sample"):
            raise ValueError(f"base: expected 'label' or 'sample', found {base!r}")
        self.base = base
        self.reset()

    def reset(self) -> None:
        self.right = 0
        self.total = 0

    def update(self, outputs: Any, labels: Any) -> dict[str, float]:
        flags, predicted = flags_and_predictions(outputs, labels, 0.5)
        wrong = (flags != predicted) & (flags >= 0)
        if self.base == "label":
            right, total = int((flags >= 0).sum() - wrong.sum()), int((flags >= 0).sum())
        else:
            right, total = int((~wrong.any(axis=1)).sum()), len(flags)
        self.right += right
        self.total += total
        return {"AccuracyScore": right / total} if total else {}

    def result(self) -> dict[str, float]:
        return {"AccuracyScore": self.right / self.total} if self.total else {}


class HammingDistance:
    """The share of known flags predicted wrong (scikit-learn's Hamming loss; lower is
    better), probabilities thresholded at 0.5."""

    lower_is_better = True  # as the metric deciding best_model

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.wrong = 0
        self.total = 0

    def update(self, outputs: Any, labels: Any) -> dict[str, float]:
        flags, predicted = flags_and_predictions(outputs, labels, 0.5)
        wrong, total = int(((flags != predicted) & (flags >= 0)).sum()), int((flags >= 0).sum())
        self.wrong += wrong
        self.total += total
        return {"HammingDistance": wrong / total} if total else {}

    def result(self) -> dict[str, float]:
        return {"HammingDistance": self.wrong / self.total} if self.total else {}
