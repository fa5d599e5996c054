"""Turn a batch's labels into per-row class distributions and a mask of labeled rows."""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

from corolla.api import DataError


def smooth(target: paddle.Tensor, epsilon: float) -> paddle.Tensor:
    """``(1 - epsilon) * target + epsilon / C`` (PaddleClas's label smoothing)."""
    if not epsilon:
        return target
    return target * (1.0 - epsilon) + epsilon / target.shape[-1]


def label_targets(labels: paddle.Tensor, class_num: int) -> tuple[paddle.Tensor, paddle.Tensor]:
    """``(target [N, C], labeled [N])`` from int labels ``[N]``/``[N, 1]`` or soft labels ``[N, C]``.

    Int rows with label -1 (unlabeled samples) and soft rows with a negative entry get
    ``labeled = 0`` and an all-zero target; ``labeled`` is float32 (1.0 or 0.0).
    """
    if paddle.is_floating_point(labels):
        if labels.ndim != 2 or labels.shape[-1] != class_num:
            raise DataError(f"soft labels must have shape [N, {class_num}] to match the logits, found {list(labels.shape)}")
        labeled = (labels.min(axis=-1) >= 0).astype("float32")
        return labels.astype("float32") * labeled.unsqueeze(-1), labeled
    if labels.ndim == 2 and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    if labels.ndim != 1:
        raise DataError(f"class labels must have shape [N] or [N, 1], found {list(labels.shape)}")
    if _readable(labels) and labels.numel() and labels.max().item() >= class_num:
        raise DataError(f"class label {labels.max().item()} is out of range for {class_num} classes (expected 0..{class_num - 1}, or -1 for unlabeled)")
    labeled = (labels >= 0).astype("float32")
    target = F.one_hot(paddle.clip(labels, min=0), class_num) * labeled.unsqueeze(-1)
    return target, labeled


def _readable(labels: paddle.Tensor) -> bool:
    """Whether the labels can be read without waiting: eager and on the CPU (reading from the GPU
    waits for it, a compiled step cannot read at all; there the loader checked the label files)."""
    return paddle.in_dynamic_mode() and labels.place.is_cpu_place()


def soft_cross_entropy(logits: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
    """Per-row ``-sum_c target_c * log_softmax(logits)_c``, shape ``[N]``."""
    return -(target * F.log_softmax(logits, axis=-1)).sum(axis=-1)


def masked_mean(per_row: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
    """Mean of ``per_row`` over rows where ``mask`` is 1; 0 (still differentiable) when none is."""
    return (per_row * mask).sum() / paddle.clip(mask.sum(), min=1.0)


def hard_targets(labels: paddle.Tensor, fallback: paddle.Tensor, use_fallback: bool = False) -> paddle.Tensor:
    """Class ids ``[N]``: the labels, or ``fallback`` (usually the teacher's arg-max) for
    unlabeled rows (-1), for soft labels (Mixup, Cutmix), or everywhere with ``use_fallback``."""
    if use_fallback or paddle.is_floating_point(labels):
        return fallback
    labels = labels.reshape([-1])
    return paddle.where(labels >= 0, labels, fallback)
