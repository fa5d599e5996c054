"""MobileNetV1 (Howard et al. 2017, https://arxiv.org/abs/1704.04861), weight-compatible
with PaddleClas 2.6's ``MobileNetV1`` and ``MobileNetV1_x*``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn
from paddle.nn.initializer import KaimingNormal

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, split_stages
from corolla.plugins.backbones._init import kaiming_init_conv_bn
from corolla.plugins.backbones._layers import ConvBN

# --- building blocks -----------------------------------------------------------


class DepthwiseSeparable(nn.Layer):
    """A 3x3 depthwise conv then a 1x1 pointwise conv, each with BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvBN(in_channels, in_channels, 3, stride=stride, groups=in_channels, act="relu")
        self.pointwise_conv = ConvBN(in_channels, out_channels, 1, act="relu")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


# --- the model ---------------------------------------------------------------------

#: blocks as (in channels, out channels, stride) at scale 1.0
BLOCKS: tuple[tuple[int, int, int], ...] = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 1024, 2),
    (1024, 1024, 1),
)
#: index of the last block of each stage: PaddleClas's four stage patterns, then the last block
STAGE_ENDS = (0, 2, 4, 10, 12)


class MobileNetV1(Backbone):
    """Stem ``conv``, 13 depthwise-separable ``blocks``, global pooling and the classifier ``fc``;
    ``scale`` is the width.

    ``lr_mult_list`` has 6 values: the stem, then the 5 stages (blocks 0, 1-2, 3-4, 5-10,
    11-12; the classifier keeps the base rate); ``return_stages`` picks stages 0-4.
    """

    def __init__(self, *, scale: float, **contract: Any) -> None:
        super().__init__(**contract)
        self.conv = ConvBN(3, int(32 * scale), 3, stride=2, act="relu")
        self.blocks = nn.Sequential(
            *(DepthwiseSeparable(int(i * scale), int(o * scale), stride=stride) for i, o, stride in BLOCKS)
        )
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = nn.Linear(
            int(BLOCKS[-1][1] * scale), self.class_num, weight_attr=paddle.ParamAttr(initializer=KaimingNormal())
        )

        kaiming_init_conv_bn(self)
        stages = split_stages(self.blocks, STAGE_ENDS)
        self.finish(
            lr_groups={"stem": [self.conv], **{f"stage{i}": blocks for i, blocks in enumerate(stages)}},
            stages=[blocks[-1] for blocks in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(self.flatten(self.avg_pool(self.blocks(self.conv(x)))))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {
        "MobileNetV1_x0_25": 0.5143,
        "MobileNetV1_x0_5": 0.6352,
        "MobileNetV1_x0_75": 0.6881,
        "MobileNetV1": 0.7099,
        "MobileNetV1_ssld": 0.7789,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "MobileNetV1_x0_25": dict(scale=0.25),
    "MobileNetV1_x0_5": dict(scale=0.5),
    "MobileNetV1_x0_75": dict(scale=0.75),
    "MobileNetV1": dict(scale=1.0),
}

BUILDERS = builders(MobileNetV1, VARIANTS, WEIGHTS)
