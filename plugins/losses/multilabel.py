"""Multi-label losses: weighted binary cross entropy on per-class logits (PULC attribute tasks)."""
from __future__ import annotations

from typing import Any

import paddle
import paddle.nn.functional as F

from corolla.api import DataError, pick_output
from corolla.plugins.losses._models import PerModelLoss
from corolla.plugins.losses._params import check_epsilon
from corolla.plugins.losses._targets import masked_mean, smooth

Tensor = paddle.Tensor


def split_labels(labels: Tensor, class_num: int) -> tuple[Tensor, Tensor | None]:
    """``(flags [N, C], ratio [N, C] or None)`` from multi-label labels ``[N, C]`` or
    ``[N, 2, C]`` (the flags, then each class's share of positives: ``label_ratio``)."""
    shape = list(labels.shape)
    flat = len(shape) == 2 and shape[1] == class_num
    stacked = len(shape) == 3 and shape[1:] == [2, class_num]
    if not paddle.is_floating_point(labels) or not (flat or stacked):
        raise DataError(
            f"a multi-label loss needs float labels [N, {class_num}] (or [N, 2, {class_num}] with label_ratio), "
            f"found {labels.dtype} {shape}; is the dataset a MultiLabelDataset with {class_num} flags per line?"
        )
    return (labels[:, 0], labels[:, 1]) if stacked else (labels, None)


def ratio_weights(flags: Tensor, ratio: Tensor) -> Tensor:
    """PaddleClas's ``ratio2weight``: ``exp(1 - r_c)`` for a positive flag, ``exp(r_c)`` for a
    negative one, with ``r_c`` the class's share of positives: rare positives weigh more."""
    positive = (flags > 0.5).astype("float32")
    return paddle.exp(positive * (1.0 - ratio) + (1.0 - positive) * ratio)


def required_ratio(labels: Tensor, class_num: int) -> tuple[Tensor, Tensor]:
    """``(flags, ratio)`` for a loss with ``weight_ratio``; a DataError when the labels carry no ratio."""
    flags, ratio = split_labels(labels, class_num)
    if ratio is None:
        raise DataError("weight_ratio: true needs each class's share of positives in the labels; "
                        "set label_ratio: true on the MultiLabelDataset")
    return flags, ratio


def multilabel_bce(logits: Tensor, labels: Tensor, *, epsilon: float, weight_ratio: bool, size_sum: bool) -> Tensor:
    """Binary cross entropy of sigmoid(logits) against the flags (see :class:`MultiLabelLoss`)."""
    class_num = logits.shape[-1]
    flags, ratio = required_ratio(labels, class_num) if weight_ratio else split_labels(labels, class_num)
    known = (flags >= 0).astype("float32")
    target = smooth(flags * known, epsilon)
    cost = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * known
    if weight_ratio:
        cost = cost * ratio_weights(flags, ratio)
    if size_sum:
        return masked_mean(cost.sum(axis=-1), (known.sum(axis=-1) > 0).astype("float32"))
    return cost.sum() / paddle.clip(known.sum(), min=1.0)


class MultiLabelLoss:
    """Weighted binary cross entropy for multi-label tasks (PaddleClas's MultiLabelLoss)::

        l_ic = -w_ic (y_ic log sigmoid(x_ic) + (1 - y_ic) log(1 - sigmoid(x_ic)))
        loss = mean_i sum_c l_ic       (size_sum: true)
        loss = mean_{i,c} l_ic         (size_sum: false)

    ``y`` is the 0/1 flag, smoothed to ``(1 - epsilon) y + epsilon / C`` when ``epsilon``
    is set. ``w_ic`` is 1, or with ``weight_ratio`` ``exp(1 - r_c)`` for a positive flag and
    ``exp(r_c)`` for a negative one, ``r_c`` the class's share of positives in the dataset
    (``label_ratio: true`` on the ``MultiLabelDataset``).

    Flags of -1 (unknown) count nowhere, and rows without a known flag are left out of the
    mean; with every flag known this is PaddleClas's value. ``model_name`` and ``key`` pick
    the output as for ``CELoss``.
    """

    def __init__(self, epsilon: float | None = None, size_sum: bool = False, weight_ratio: bool = False,
                 model_name: str | None = None, key: str | None = None) -> None:
        self.epsilon = check_epsilon(epsilon)
        self.size_sum = bool(size_sum)
        self.weight_ratio = bool(weight_ratio)
        self.model_name = model_name
        self.key = key

    def __call__(self, outputs: Any, labels: Tensor) -> dict[str, Tensor]:
        logits = pick_output(outputs, model_name=self.model_name, key=self.key)
        return {"MultiLabelLoss": multilabel_bce(logits, labels, epsilon=self.epsilon,
                                                 weight_ratio=self.weight_ratio, size_sum=self.size_sum)}


class DistillationMultiLabelLoss(PerModelLoss):
    """:class:`MultiLabelLoss` of each model in ``model_names`` with the ground truth, one
    entry ``{name}_{model}`` per model."""

    def __init__(self, model_names: Any = ("Student",), epsilon: float | None = None, size_sum: bool = False,
                 weight_ratio: bool = False, key: str | None = None, name: str = "loss_mll") -> None:
        super().__init__(model_names, key, name)
        self.epsilon = check_epsilon(epsilon)
        self.size_sum = bool(size_sum)
        self.weight_ratio = bool(weight_ratio)

    def term(self, output: Tensor, labels: Tensor) -> Tensor:
        return multilabel_bce(output, labels, epsilon=self.epsilon, weight_ratio=self.weight_ratio,
                              size_sum=self.size_sum)
