"""Regularisation the backbone families share: stochastic depth (drop path) with its
per-block schedule, and the parameters PaddleClas keeps out of weight decay."""
from __future__ import annotations

import numpy as np
import paddle
from paddle import nn
from paddle.regularizer import L2Decay


def drop_path(x: paddle.Tensor, rate: float, training: bool, *, mask_dtype: str | None = None) -> paddle.Tensor:
    """Stochastic depth: in training, zero each sample's residual branch with probability
    ``rate`` and scale the kept ones by ``1 / (1 - rate)``; ``x`` itself otherwise.

    ``mask_dtype``: the dtype the random mask is drawn in (default ``x``'s). PaddleClas's
    EfficientNets draw it in Paddle's default dtype (float32) whatever the input's; the two
    differ only for float16 inputs (AMP), where ``1 - rate + U(0, 1)`` rounds differently.
    """
    if not training or not rate:
        return x
    keep = 1.0 - rate
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    mask = paddle.floor(keep + paddle.rand(shape, dtype=mask_dtype or x.dtype))
    if mask.dtype != x.dtype:
        mask = mask.astype(x.dtype)
    # the mask is 0 or 1, so the order of the two products does not change a bit of the result
    return x / keep * mask


class DropPath(nn.Layer):
    """:func:`drop_path` as a layer: the identity at rate 0 and in inference."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return drop_path(x, self.rate, self.training)

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


def drop_path_rates(rate: float, count: int) -> list[float]:
    """The drop-path rate of each of ``count`` blocks: rising linearly from 0 to ``rate``."""
    return [float(r) for r in np.linspace(0.0, rate, count)]


def exempt_norms_from_decay(model: nn.Layer) -> None:
    """Keep weight decay off every BatchNorm scale and shift of ``model`` (PaddleClas's
    ``L2Decay(0.0)``); a parameter's own regularizer overrides the optimizer's."""
    for layer in model.sublayers():
        if isinstance(layer, nn.BatchNorm2D):
            layer.weight.regularizer = L2Decay(0.0)
            layer.bias.regularizer = L2Decay(0.0)
