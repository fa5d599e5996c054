"""Cross-entropy losses: against the labels (CELoss, DistillationGTCELoss) and against a
teacher's softened prediction (DistillationCELoss)."""
from __future__ import annotations

from typing import Any

import paddle
import paddle.nn.functional as F

from corolla.api import pick_output
from corolla.plugins.losses._models import PairLoss, PerModelLoss
from corolla.plugins.losses._params import check_epsilon
from corolla.plugins.losses._targets import label_targets, masked_mean, smooth, soft_cross_entropy

Tensor = paddle.Tensor


def label_cross_entropy(logits: Tensor, labels: Tensor, epsilon: float) -> Tensor:
    """Mean over labeled rows of ``-sum_c y_c log softmax(x)_c``, ``y`` smoothed by ``epsilon``."""
    target, labeled = label_targets(labels, logits.shape[-1])
    return masked_mean(soft_cross_entropy(logits, smooth(target, epsilon)), labeled)


class CELoss:
    """Cross entropy with the labels: ``mean_i -sum_c y_ic log softmax(x_i)_c``.

    ``y`` is the one-hot label, or the soft label of Mixup/Cutmix (float ``[N, C]``,
    used as given), smoothed to ``(1 - epsilon) y + epsilon / C`` when ``epsilon`` is
    set. The mean runs over labeled rows only: rows with label -1 (unlabeled samples)
    are ignored. For a dict output, ``model_name`` picks a sub-model (default: the one
    that predicts) and ``key`` a named output (default ``logits``).

    Differs from PaddleClas: soft labels are not passed through a softmax again.
    """

    labeled_only = True  # the engine's averages weight it by each batch's labeled rows

    def __init__(self, epsilon: float | None = None, model_name: str | None = None, key: str | None = None) -> None:
        self.epsilon = check_epsilon(epsilon)
        self.model_name = model_name
        self.key = key

    def __call__(self, outputs: Any, labels: Tensor) -> dict[str, Tensor]:
        logits = pick_output(outputs, model_name=self.model_name, key=self.key)
        return {"CELoss": label_cross_entropy(logits, labels, self.epsilon)}


class DistillationGTCELoss(PerModelLoss):
    """:class:`CELoss` of each model in ``model_names`` with the ground truth.

    ``loss_m = mean_{i labeled} -sum_c y_ic log softmax(x^m_i)_c``, one entry
    ``{name}_{m}`` per model; unlabeled rows (label -1) are ignored.
    """

    labeled_only = True

    def __init__(
        self,
        model_names: Any = ("Student",),
        epsilon: float | None = None,
        key: str | None = None,
        name: str = "loss_gt_ce",
    ) -> None:
        super().__init__(model_names, key, name)
        self.epsilon = check_epsilon(epsilon)

    def term(self, output: Tensor, labels: Tensor) -> Tensor:
        return label_cross_entropy(output, labels, self.epsilon)


class DistillationCELoss(PairLoss):
    """Soft-label cross entropy of the first model against the second's prediction.

    For each pair ``(s, t)``: ``mean_i -sum_c q_ic log softmax(s_i)_c`` with
    ``q = softmax(t)``, smoothed to ``(1 - epsilon) q + epsilon / C`` when ``epsilon``
    is set. Every row counts, labeled or not.

    Differs from PaddleClas: ``epsilon`` smooths ``softmax(t)``, not the raw logits.
    """

    def __init__(
        self,
        model_name_pairs: Any = (("Student", "Teacher"),),
        epsilon: float | None = None,
        key: str | None = None,
        name: str = "loss_ce",
    ) -> None:
        super().__init__(model_name_pairs, key, name)
        self.epsilon = check_epsilon(epsilon)

    def term(self, first: Tensor, second: Tensor, labels: Tensor) -> Tensor:
        target = smooth(F.softmax(second, axis=-1), self.epsilon)
        return soft_cross_entropy(first, target).mean()


class GoogLeNetLoss:
    """GoogLeNet's loss (Szegedy et al. 2014): cross entropy of the main logits plus 0.3
    times that of each auxiliary head (``aux_logits1``, ``aux_logits2``)::

        loss = CE(logits) + 0.3 * CE(aux_logits1) + 0.3 * CE(aux_logits2)

    each CE a mean over labeled rows. The auxiliary heads run only in training, so in
    evaluation the loss is ``CE(logits)``. Label smoothing is not supported, as in PaddleClas.
    """

    AUXILIARY = ("aux_logits1", "aux_logits2")
    labeled_only = True

    def __init__(self, epsilon: float | None = None) -> None:
        if check_epsilon(epsilon):
            raise ValueError(f"epsilon: GoogLeNetLoss does not smooth labels; leave it unset, found {epsilon!r}")

    def __call__(self, outputs: Any, labels: Tensor) -> dict[str, Tensor]:
        loss = label_cross_entropy(pick_output(outputs), labels, 0.0)
        if isinstance(outputs, dict):
            for key in self.AUXILIARY:
                if key in outputs:
                    loss = loss + 0.3 * label_cross_entropy(outputs[key], labels, 0.0)
        return {"GoogLeNetLoss": loss}
