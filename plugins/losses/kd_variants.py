"""Logit distillation beyond plain KL: DIST (correlations), SKD (spherical) and WSL (weighted soft labels)."""
from __future__ import annotations

from typing import Any

import paddle
import paddle.nn.functional as F

from corolla.plugins.losses._models import PairLoss
from corolla.plugins.losses._params import check_positive
from corolla.plugins.losses._targets import hard_targets, soft_cross_entropy

Tensor = paddle.Tensor


def pearson(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-row Pearson correlation of ``[N, C]`` tensors: the cosine of the centred rows,
    ``a.b / (|a| |b| + eps)``."""
    a = a - a.mean(axis=1, keepdim=True)
    b = b - b.mean(axis=1, keepdim=True)
    return (a * b).sum(axis=1) / (a.norm(axis=1) * b.norm(axis=1) + eps)


class DistillationDISTLoss(PairLoss):
    """DIST (Huang et al. 2022, "Knowledge distillation from a stronger teacher") between
    pairs ``(s, t)``, with ``p = softmax(s)``, ``q = softmax(t)``::

        inter = 1 - mean_i pearson(p_i, q_i)           # each sample's class distribution
        intra = 1 - mean_c pearson(p_:c, q_:c)         # each class over the batch
        loss  = beta * inter + gamma * intra

    Every row counts, labeled or not.
    """

    def __init__(self, model_name_pairs: Any = (("Student", "Teacher"),), beta: float = 1.0, gamma: float = 1.0,
                 key: str | None = None, name: str = "loss_dist") -> None:
        super().__init__(model_name_pairs, key, name)
        self.beta = float(beta)
        self.gamma = float(gamma)

    def term(self, first: Tensor, second: Tensor, labels: Tensor) -> Tensor:
        p, q = F.softmax(first, axis=-1), F.softmax(second, axis=-1)
        inter = 1.0 - pearson(p, q).mean()
        intra = 1.0 - pearson(p.transpose([1, 0]), q.transpose([1, 0])).mean()
        return self.beta * inter + self.gamma * intra


def _standardized(logits: Tensor, multiplier: float) -> Tensor:
    """Each row centred and scaled to unit variance (layer norm without affine, eps 1e-7), times ``multiplier``."""
    return F.layer_norm(logits, [logits.shape[-1]], weight=None, bias=None, epsilon=1e-7) * multiplier


class DistillationSKDLoss(PairLoss):
    """Spherical knowledge distillation (Guo et al. 2020) between pairs ``(s, t)``.

    With ``n(x) = multiplier * layer_norm(x)`` (each row standardised), ``T`` the
    temperature and ``g`` the target class::

        kd   = T^2 * mean_i -sum_c softmax(n(t_i)/T)_c log softmax(n(s_i)/T)_c
        ce   = mean_i -log softmax(n(s_i))_g
        loss = alpha * kd + (1 - alpha) * ce

    ``g`` is the label; for unlabeled rows (label -1), for soft labels, or with
    ``use_target_as_gt``, it is the teacher's arg-max.
    """

    def __init__(self, model_name_pairs: Any = (("Student", "Teacher"),), temperature: float = 1.0,
                 multiplier: float = 2.0, alpha: float = 0.9, use_target_as_gt: bool = False,
                 key: str | None = None, name: str = "loss_skd") -> None:
        super().__init__(model_name_pairs, key, name)
        self.temperature = check_positive(temperature, "temperature")
        self.multiplier = check_positive(multiplier, "multiplier")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha: expected a number in [0, 1], found {alpha!r}")
        self.alpha = float(alpha)
        self.use_target_as_gt = bool(use_target_as_gt)

    def term(self, first: Tensor, second: Tensor, labels: Tensor) -> Tensor:
        t = self.temperature
        target = F.one_hot(hard_targets(labels, second.argmax(axis=-1), self.use_target_as_gt), first.shape[-1])
        s, q = _standardized(first, self.multiplier), _standardized(second, self.multiplier)
        kd = soft_cross_entropy(s / t, F.softmax(q / t, axis=-1)).mean() * t * t
        ce = soft_cross_entropy(s, target).mean()
        return self.alpha * kd + (1.0 - self.alpha) * ce


class DistillationWSLLoss(PairLoss):
    """Weighted soft labels (Zhou et al. 2021) between pairs ``(s, t)``, temperature ``T``.

    With ``g`` the target class (as in :class:`DistillationSKDLoss`), ``ce_x = -log
    softmax(x)_g`` computed without gradient, and ``w_i = 1 - exp(-max(ce_s / (ce_t +
    1e-7), 0))`` (samples the student gets wrong more than the teacher weigh more)::

        loss = T^2 * mean_i w_i * (-sum_c softmax(t_i/T)_c log softmax(s_i/T)_c)
    """

    def __init__(self, model_name_pairs: Any = (("Student", "Teacher"),), temperature: float = 2.0,
                 use_target_as_gt: bool = False, key: str | None = None, name: str = "loss_wsl") -> None:
        super().__init__(model_name_pairs, key, name)
        self.temperature = check_positive(temperature, "temperature")
        self.use_target_as_gt = bool(use_target_as_gt)

    def term(self, first: Tensor, second: Tensor, labels: Tensor) -> Tensor:
        t = self.temperature
        target = F.one_hot(hard_targets(labels, second.argmax(axis=-1), self.use_target_as_gt), first.shape[-1])
        ce_s = soft_cross_entropy(first.detach(), target)
        ce_t = soft_cross_entropy(second.detach(), target)
        weight = 1.0 - paddle.exp(-paddle.clip(ce_s / (ce_t + 1e-7), min=0.0))
        kd = soft_cross_entropy(first / t, F.softmax(second / t, axis=-1))
        return (kd * weight).mean() * t * t
