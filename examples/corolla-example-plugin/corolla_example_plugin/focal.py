"""FocalLoss: cross entropy that down-weights the samples a model already gets right."""
from __future__ import annotations

from typing import Any

import paddle
import paddle.nn.functional as F

from corolla.api import pick_output


class FocalLoss:
    """``mean_i -(1 - p_i)^gamma log p_i`` over labeled rows (label -1 is skipped),
    ``p_i`` the softmax probability of sample ``i``'s class (Lin et al. 2017)."""

    def __init__(self, gamma: float = 2.0) -> None:
        if gamma < 0:
            raise ValueError(f"gamma: expected a number >= 0, found {gamma}")
        self.gamma = gamma

    def __call__(self, outputs: Any, labels: paddle.Tensor) -> dict[str, paddle.Tensor]:
        logits = pick_output(outputs)  # the logits, also of a dict or distillation output
        labels = labels.reshape([-1])
        labeled = (labels >= 0).astype("float32")
        log_p = F.log_softmax(logits, axis=-1)
        picked = (log_p * F.one_hot(paddle.clip(labels, min=0), logits.shape[-1])).sum(axis=-1)
        per_row = -((1.0 - picked.exp()) ** self.gamma) * picked
        return {"FocalLoss": (per_row * labeled).sum() / paddle.clip(labeled.sum(), min=1.0)}
