"""Distances between two models' outputs or feature maps: l2 / l1 / smooth-l1, and FSP."""
from __future__ import annotations

from typing import Any

import paddle
import paddle.nn.functional as F

from corolla.api import ConfigError, pick_output
from corolla.plugins.losses._models import PairLoss
from corolla.plugins.losses._params import check_act, check_positive

Tensor = paddle.Tensor


def _smooth_l1(diff: Tensor, delta: float) -> Tensor:
    size = diff.abs()
    return paddle.where(size < delta, 0.5 * diff * diff, delta * size - 0.5 * delta * delta)


_DISTANCES = {
    "l2": lambda diff, delta: diff * diff,
    "l1": lambda diff, delta: diff.abs(),
    "smooth_l1": _smooth_l1,
}
_REDUCTIONS = {"mean": paddle.mean, "sum": paddle.sum}


class DistillationDistanceLoss(PairLoss):
    """Element-wise distance between pairs ``(a, b)`` of outputs (logits, or the feature
    maps named by ``key``), after ``act`` (null, softmax or sigmoid)::

        l2:        reduce((a - b)^2)
        l1:        reduce(|a - b|)
        smooth_l1: reduce(0.5 (a - b)^2 if |a - b| < delta else delta |a - b| - delta^2 / 2)

    ``reduce`` is the mean over all elements (``reduction: mean``) or their sum.
    """

    def __init__(
        self,
        mode: str = "l2",
        model_name_pairs: Any = (("Student", "Teacher"),),
        act: str | None = None,
        reduction: str = "mean",
        delta: float = 1.0,
        key: str | None = None,
        name: str = "loss_",
    ) -> None:
        if mode not in _DISTANCES:
            raise ValueError(f"mode: expected one of {', '.join(map(repr, _DISTANCES))}, found {mode!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction: expected 'mean' or 'sum', found {reduction!r}")
        super().__init__(model_name_pairs, key, name + mode)
        self.mode = mode
        self.act = check_act(act)
        self.reduce = _REDUCTIONS[reduction]
        self.delta = check_positive(delta, "delta")

    def term(self, first: Tensor, second: Tensor, labels: Tensor) -> Tensor:
        if first.shape != second.shape:
            raise ConfigError(f"{self.mode} distance needs outputs of equal shape, found {list(first.shape)} and {list(second.shape)}")
        return self.reduce(_DISTANCES[self.mode](self.act(first) - self.act(second), self.delta))


class DistillationL2Loss(DistillationDistanceLoss):
    """Seed 003's L2 distiller (PaddleSlim ``l2_loss``): ``mean((a - b)^2)`` between pairs
    of outputs, on logits by default or on the feature maps named by ``key``."""

    def __init__(self, model_name_pairs: Any = (("Student", "Teacher"),), key: str | None = None, name: str = "loss_l2") -> None:
        super().__init__("l2", model_name_pairs, key=key, name=name)
        self.name = name  # the parent appends the mode to its name


def fsp_matrix(first: Tensor, second: Tensor) -> Tensor:
    """The flow of solution procedure between two ``[N, C, H, W]`` maps: ``[N, C1, C2]``,
    ``G_ij = sum_hw F1_ihw F2_jhw / (H W)``; the larger map is average-pooled to the
    smaller one's size first."""
    size = [min(a, b) for a, b in zip(first.shape[2:], second.shape[2:])]
    first = F.adaptive_avg_pool2d(first, size) if list(first.shape[2:]) != list(size) else first
    second = F.adaptive_avg_pool2d(second, size) if list(second.shape[2:]) != list(size) else second
    n, area = first.shape[0], size[0] * size[1]
    return paddle.matmul(first.reshape([n, first.shape[1], area]), second.reshape([n, second.shape[1], area]), transpose_y=True) / area


class DistillationFSPLoss(PairLoss):
    """FSP distillation (Yim et al. 2017; PaddleSlim ``fsp_loss``) between pairs ``(s, t)``::

        loss = sum_k mean((G(s[a_k], s[b_k]) - G(t[a_k], t[b_k]))^2)

    over ``feature_pairs`` ``[[a_1, b_1], ...]`` of named feature maps (e.g. ``stage1``,
    ``stage2``: give the sub-models ``return_stages``), with ``G`` the :func:`fsp_matrix`.
    The student's and teacher's matrices must have equal shapes (equal channel counts).
    """

    def __init__(self, feature_pairs: Any, model_name_pairs: Any = (("Student", "Teacher"),), name: str = "loss_fsp") -> None:
        super().__init__(model_name_pairs, None, name)
        ok = isinstance(feature_pairs, (list, tuple)) and feature_pairs and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(k, str) for k in p) for p in feature_pairs
        )
        if not ok:
            raise ValueError(f"feature_pairs: expected a non-empty list of pairs of output names like [[stage1, stage2]], found {feature_pairs!r}")
        self.feature_pairs = [tuple(p) for p in feature_pairs]

    def __call__(self, outputs: Any, labels: Tensor) -> dict[str, Tensor]:
        result = {}
        for first, second in self.model_name_pairs:
            total = []
            for a, b in self.feature_pairs:
                g_s = fsp_matrix(pick_output(outputs, model_name=first, key=a), pick_output(outputs, model_name=first, key=b))
                g_t = fsp_matrix(pick_output(outputs, model_name=second, key=a), pick_output(outputs, model_name=second, key=b))
                if g_s.shape != g_t.shape:
                    raise ConfigError(
                        f"FSP matrices of {first} and {second} for ({a}, {b}) differ in shape: "
                        f"{list(g_s.shape)} vs {list(g_t.shape)}; pick feature maps with equal channel counts"
                    )
                total.append(((g_s - g_t) ** 2).mean())
            result[f"{self.name}_{first}_{second}"] = paddle.add_n(total)
        return result
