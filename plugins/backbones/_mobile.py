"""Pieces the mobile families (MobileNetV1/V2/V3, PP-LCNet, ShuffleNetV2) share beyond
:mod:`._layers`: channel rounding, the squeeze-excitation gate, stage splitting, and the
training details PaddleClas sets per parameter (initialisation, weight decay)."""
from __future__ import annotations

from typing import Iterable, Sequence

import paddle
from paddle import nn
from paddle.nn.initializer import KaimingNormal
from paddle.regularizer import L2Decay

from corolla.plugins.backbones._layers import ConvBN, ZooConvBN


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Layer):
    """Channel attention: pooled features -> 1x1 conv -> ReLU -> 1x1 conv -> hard-sigmoid gate.

    ``gate_slope`` is 0.2 in MobileNetV3 and Paddle's default 0.1666667 in PP-LCNet
    (the hard-sigmoid offset is 0.5 in both).
    """

    def __init__(self, channels: int, *, gate_slope: float, reduction: int = 4) -> None:
        super().__init__()
        self.gate_slope = gate_slope
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self.conv2(self.relu(self.conv1(self.avg_pool(x))))
        return x * nn.functional.hardsigmoid(gate, slope=self.gate_slope, offset=0.5)


def split_stages(blocks: Iterable[nn.Layer], stage_ends: Sequence[int]) -> list[list[nn.Layer]]:
    """The blocks of each stage, given the index of each stage's last block."""
    blocks = list(blocks)
    starts = [0, *(end + 1 for end in stage_ends[:-1])]
    return [blocks[start : end + 1] for start, end in zip(starts, stage_ends, strict=True)]


def kaiming_init_conv_bn(model: nn.Layer) -> None:
    """Re-initialise the convolution of every conv-BN pair Kaiming-normal (fan-in per group),
    as PaddleClas declares them in MobileNetV1, PP-LCNet and ShuffleNetV2; Paddle's default
    ignores ``groups``, which starts depthwise convolutions far too small."""
    init = KaimingNormal()
    for layer in model.sublayers():
        if isinstance(layer, ConvBN):
            init(layer.conv.weight)
        elif isinstance(layer, ZooConvBN):
            init(layer._conv.weight)


def exempt_norms_from_decay(model: nn.Layer) -> None:
    """Keep weight decay off every BatchNorm scale and shift (PaddleClas's ``L2Decay(0.0)``
    in MobileNetV3 and PP-LCNet); a parameter's own regularizer overrides the optimizer's."""
    for layer in model.sublayers():
        if isinstance(layer, nn.BatchNorm2D):
            layer.weight.regularizer = L2Decay(0.0)
            layer.bias.regularizer = L2Decay(0.0)
