"""PeleeNet (Wang et al. 2018, https://arxiv.org/abs/1804.06882): a DenseNet variant for
mobile devices, weight-compatible with PaddleClas 2.6's ``PeleeNet`` (model_zoo/peleenet.py)."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import STABLE_BATCHNORM_SIZE, Backbone, builders
from corolla.plugins.backbones._checks import check_rate
from corolla.plugins.backbones._init import init_convs_fan_out
from corolla.plugins.backbones._layers import LeanBatchNorm2D

# --- building blocks -----------------------------------------------------------------------


class ConvBNReLU(nn.Layer):
    """Bias-free conv, BN, ReLU (``conv``, ``norm``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias_attr=False
        )
        self.norm = LeanBatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.relu(self.norm(self.conv(x)))


class StemBlock(nn.Layer):
    """3x3/2 conv, then two branches (2x2 max pooling; 1x1 conv -> 3x3/2 conv) concatenated
    and fused by a 1x1 conv: stride 4, ``channels`` out."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.stem1 = ConvBNReLU(3, channels, 3, stride=2)
        self.stem2a = ConvBNReLU(channels, channels // 2, 1)
        self.stem2b = ConvBNReLU(channels // 2, channels, 3, stride=2)
        self.stem3 = ConvBNReLU(2 * channels, channels, 1)
        self.pool = nn.MaxPool2D(2, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem1(x)
        return self.stem3(paddle.concat([self.pool(x), self.stem2b(self.stem2a(x))], axis=1))


class TwoWayDenseLayer(nn.Layer):
    """Two branches of ``growth_rate / 2`` channels each (1x1 -> 3x3, and 1x1 -> 3x3 -> 3x3),
    appended to the input."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_width: int) -> None:
        super().__init__()
        half = growth_rate // 2
        inner = half * bottleneck_width // 4 * 4
        if inner > in_channels / 2:  # never wider than half the input
            inner = in_channels // 8 * 4
        self.branch1a = ConvBNReLU(in_channels, inner, 1)
        self.branch1b = ConvBNReLU(inner, half, 3)
        self.branch2a = ConvBNReLU(in_channels, inner, 1)
        self.branch2b = ConvBNReLU(inner, half, 3)
        self.branch2c = ConvBNReLU(half, half, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        branch1 = self.branch1b(self.branch1a(x))
        branch2 = self.branch2c(self.branch2b(self.branch2a(x)))
        return paddle.concat([x, branch1, branch2], axis=1)


# --- the model -----------------------------------------------------------------------------

STEM_CHANNELS = 32
GROWTH_RATE = 32
#: per dense block: (dense layers, bottleneck width)
BLOCKS = ((3, 1), (4, 2), (8, 4), (6, 4))


class PeleeNet(Backbone):
    """PeleeNet: in ``features``, the stem block ``stemblock`` (stride 4), then four stages,
    each dense block ``denseblock<i>`` and 1x1 conv ``transition<i>`` (2x2 average pooling
    after the first three); global pooling, dropout and the classifier ``classifier``.

    ``drop_rate``: dropout before the classifier. ``lr_mult_list`` has 5 values: the stem,
    then each stage; ``return_stages`` picks stages 0-3 (the transitions, at strides 4-32).
    """

    def __init__(self, *, drop_rate: float = 0.05, **contract: Any) -> None:
        super().__init__(**contract)
        drop_rate = check_rate(contract["name"], "drop_rate", drop_rate)
        layers: list[tuple[str, nn.Layer]] = [("stemblock", StemBlock(STEM_CHANNELS))]
        groups: dict[str, list[nn.Layer]] = {"stem": [layers[0][1]]}
        stages = []
        channels = STEM_CHANNELS
        for i, (depth, width) in enumerate(BLOCKS, start=1):
            block = nn.Sequential(
                *(
                    (f"denselayer{j + 1}", TwoWayDenseLayer(channels + j * GROWTH_RATE, GROWTH_RATE, width))
                    for j in range(depth)
                )
            )
            channels += depth * GROWTH_RATE
            transition = ConvBNReLU(channels, channels, 1)
            layers += [(f"denseblock{i}", block), (f"transition{i}", transition)]
            if i < len(BLOCKS):
                layers.append((f"transition{i}_pool", nn.AvgPool2D(2, stride=2)))
            groups[f"stage{i - 1}"] = [block, transition]
            stages.append(transition)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(drop_rate) if drop_rate else None
        self.classifier = nn.Linear(channels, self.class_num)
        init_convs_fan_out(self, per_group=False, zero_bias=False, linear_std=0.01)
        self.finish(lr_groups=groups, stages=stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = paddle.flatten(self.pool(self.features(x)), start_axis=1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.classifier(x)


MIN_INPUT_SIZE = STABLE_BATCHNORM_SIZE  # see there why not 32

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -------------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"PeleeNet": 0.7153})

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "PeleeNet": dict(),
}

BUILDERS = builders(PeleeNet, VARIANTS, WEIGHTS)
