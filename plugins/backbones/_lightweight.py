"""Pieces that several lightweight families (PP-HGNet/V2, ESNet, MicroNet, MobileNetV4)
share beyond :mod:`._layers` and :mod:`._mobile`: initialisation of every convolution,
channel shuffling and stochastic depth."""
from __future__ import annotations

import paddle
from paddle import nn
from paddle.nn.initializer import KaimingNormal


def kaiming_init_convs(model: nn.Layer) -> None:
    """Re-initialise the weight of every ``nn.Conv2D`` in ``model`` Kaiming-normal
    (fan-in per group), as PaddleClas does for all convolutions of PP-HGNet/V2."""
    init = KaimingNormal()
    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            init(layer.weight)


def channel_shuffle(x: paddle.Tensor, groups: int) -> paddle.Tensor:
    """Interleave the channels of ``groups`` equal groups (ShuffleNet's channel shuffle)."""
    batch, channels, height, width = x.shape
    x = x.reshape([batch, groups, channels // groups, height, width])
    return x.transpose([0, 2, 1, 3, 4]).reshape([batch, channels, height, width])


class DropPath(nn.Layer):
    """Stochastic depth: in training, zero a residual branch for a random ``rate`` of the
    samples and scale the kept ones by ``1 / (1 - rate)``; the identity in inference."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.training or self.rate == 0:
            return x
        keep = 1.0 - self.rate
        mask = paddle.floor(keep + paddle.rand([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype))
        return x / keep * mask
