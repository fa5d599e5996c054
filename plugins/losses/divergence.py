"""Divergences between two models' predictions: KL (Hinton KD), DML (symmetric KL) and DKD."""
from __future__ import annotations

from typing import Any

import paddle
import paddle.nn.functional as F

from corolla.plugins.losses._models import PairLoss
from corolla.plugins.losses._params import check_act, check_positive
from corolla.plugins.losses._targets import hard_targets
from corolla.plugins.losses.multilabel import ratio_weights, required_ratio

Tensor = paddle.Tensor


def _kl_rows(p: Tensor, log_p: Tensor, log_q: Tensor) -> Tensor:
    """Per-row ``KL(p || q) = sum_c p_c (log p_c - log q_c)``, with ``0 log 0 = 0``."""
    return paddle.where(p > 0, p * (log_p - log_q), paddle.zeros_like(p)).sum(axis=-1)


class DistillationKLDivLoss(PairLoss):
    """Hinton's knowledge distillation between pairs ``(s, t)``, temperature ``T``::

        loss = T^2 * sum_i KL(softmax(t_i / T) || softmax(s_i / T)) / N

    ``temperature`` is PaddleClas's name; ``T`` is accepted as its short form.
    """

    def __init__(
        self,
        model_name_pairs: Any = (("Student", "Teacher"),),
        temperature: float | None = None,
        T: float | None = None,
        key: str | None = None,
        name: str = "loss_kl",
    ) -> None:
        super().__init__(model_name_pairs, key, name)
        if temperature is not None and T is not None:
            raise ValueError(f"temperature and T are the same setting; give one, found temperature={temperature!r}, T={T!r}")
        self.temperature = check_positive(T if T is not None else (4.0 if temperature is None else temperature), "temperature")

    def term(self, first: Tensor, second: Tensor, labels: Tensor) -> Tensor:
        t = self.temperature
        log_q = F.log_softmax(first / t, axis=-1)
        log_p = F.log_softmax(second / t, axis=-1)
        return _kl_rows(paddle.exp(log_p), log_p, log_q).sum() * t * t / first.shape[0]


class DistillationDMLLoss(PairLoss):
    """Deep mutual learning: the symmetric KL divergence between pairs ``(s, t)``.

    With ``p = act(s)``, ``q = act(t)`` (``act`` softmax, sigmoid or null) and
    ``k(a, b)_ic = b_ic * log((b_ic + eps) / (a_ic + eps))``::

        loss = mean_{i,c} C * (k(p, q) + k(q, p))_ic / 2       # = mean_i (KL(q||p) + KL(p||q)) / 2
        loss = mean_i sum_c C * (k(p, q) + k(q, p))_ic / 2     # with sum_across_class_dim

    as in PaddleClas (its factor C included). Every row counts, labeled or not: this is
    the SKL-UGI distillation of the PULC docs, and what PaddleClas's JSDivLoss computed.

    ``weight_ratio`` (multi-label tasks, labels with ``label_ratio``) multiplies each
    ``(i, c)`` term by ``MultiLabelLoss``'s class weight ``exp(1 - r_c)`` or ``exp(r_c)``
    for a positive or negative flag, and by 0 for an unknown flag (-1).
    """

    def __init__(
        self,
        model_name_pairs: Any = (("Student", "Teacher"),),
        act: str | None = "softmax",
        sum_across_class_dim: bool = False,
        eps: float = 1e-12,
        weight_ratio: bool = False,
        key: str | None = None,
        name: str = "loss_dml",
    ) -> None:
        super().__init__(model_name_pairs, key, name)
        self.act = check_act(act)
        self.sum_across_class_dim = bool(sum_across_class_dim)
        self.eps = check_positive(eps, "eps")
        self.weight_ratio = bool(weight_ratio)

    def term(self, first: Tensor, second: Tensor, labels: Tensor) -> Tensor:
        p, q = self.act(first), self.act(second)
        log_p, log_q = paddle.log(p + self.eps), paddle.log(q + self.eps)
        classes = first.shape[-1]
        cost = (q * (log_q - log_p) + p * (log_p - log_q)) * (classes / 2.0)
        if self.weight_ratio:
            flags, ratio = required_ratio(labels, classes)
            cost = cost * ratio_weights(flags, ratio) * (flags >= 0).astype("float32")
        return cost.sum(axis=-1).mean() if self.sum_across_class_dim else cost.mean()


class DistillationDKDLoss(PairLoss):
    """Decoupled knowledge distillation (Zhao et al. 2022) between pairs ``(s, t)``.

    With ``g`` the target class, ``T`` the temperature, ``b(x) = [softmax(x/T)_g,
    1 - softmax(x/T)_g]`` and ``n(x) = softmax(x/T - 1000 * onehot(g))`` (the non-target
    distribution)::

        TCKD = T^2 * sum_i KL(b(t_i) || b(s_i)) / N
        NCKD = T^2 * sum_i KL(n(t_i) || n(s_i)) / N
        loss = alpha * TCKD + beta * NCKD

    ``g`` is the label; for unlabeled rows (label -1), for soft labels, or with
    ``use_target_as_gt``, it is the second model's arg-max.
    """

    def __init__(
        self,
        model_name_pairs: Any = (("Student", "Teacher"),),
        temperature: float = 1.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        use_target_as_gt: bool = False,
        key: str | None = None,
        name: str = "loss_dkd",
    ) -> None:
        super().__init__(model_name_pairs, key, name)
        self.temperature = check_positive(temperature, "temperature")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.use_target_as_gt = bool(use_target_as_gt)

    def term(self, first: Tensor, second: Tensor, labels: Tensor) -> Tensor:
        t = self.temperature
        gt = F.one_hot(hard_targets(labels, second.argmax(axis=-1), self.use_target_as_gt), first.shape[-1])
        p_s, p_t = F.softmax(first / t, axis=-1), F.softmax(second / t, axis=-1)
        b_s = paddle.stack([(p_s * gt).sum(-1), (p_s * (1 - gt)).sum(-1)], axis=-1)
        b_t = paddle.stack([(p_t * gt).sum(-1), (p_t * (1 - gt)).sum(-1)], axis=-1)
        tckd = _kl_rows(b_t, paddle.log(b_t), paddle.log(b_s)).sum()
        log_n_s = F.log_softmax(first / t - 1000.0 * gt, axis=-1)
        log_n_t = F.log_softmax(second / t - 1000.0 * gt, axis=-1)
        nckd = _kl_rows(paddle.exp(log_n_t), log_n_t, log_n_s).sum()
        return (self.alpha * tckd + self.beta * nckd) * t * t / first.shape[0]
