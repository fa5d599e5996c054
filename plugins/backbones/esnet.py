"""ESNet (Enhanced ShuffleNet): Baidu's ShuffleNetV2 with squeeze-excitation, Ghost-style
feature reuse and an extra depthwise-separable mix in the downsampling blocks (PP-PicoDet's
backbone), weight-compatible with PaddleClas 2.6's ``ESNet_x*``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, split_stages
from corolla.plugins.backbones._checks import check_positive_int, check_rate
from corolla.plugins.backbones._init import kaiming_init_conv_bn
from corolla.plugins.backbones._layers import ConvBN, SqueezeExcite, channel_shuffle, make_divisible
from corolla.plugins.backbones._regularize import exempt_norms_from_decay

#: Paddle's default hard-sigmoid slope (``nn.Hardsigmoid``), which ESNet's SE gate uses
HARDSIGMOID_SLOPE = 0.1666667

# --- building blocks -----------------------------------------------------------------------


class ESBlock(nn.Layer):
    """The stride-1 block: half the channels pass through; the other half go through a 1x1
    conv, whose output and a depthwise conv of it (Ghost-style) are concatenated, gated by
    squeeze-excitation and projected back by a 1x1 conv; the halves are then shuffled."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.pw_1_1 = ConvBN(half, half, 1, act="hardswish")
        self.dw_1 = ConvBN(half, half, 3, groups=half)
        self.se = SqueezeExcite(channels, gate_slope=HARDSIGMOID_SLOPE)
        self.pw_1_2 = ConvBN(channels, half, 1, act="hardswish")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        passed, branch = paddle.split(x, 2, axis=1)
        branch = self.pw_1_1(branch)
        branch = self.pw_1_2(self.se(paddle.concat([branch, self.dw_1(branch)], axis=1)))
        return channel_shuffle(paddle.concat([passed, branch], axis=1), 2)


class ESDownsample(nn.Layer):
    """The stride-2 block: a depthwise-then-pointwise branch and a pointwise, depthwise,
    squeeze-excitation, pointwise branch, each to half of ``out_channels``, concatenated and
    mixed by a depthwise 3x3 and a pointwise conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.dw_1 = ConvBN(in_channels, in_channels, 3, stride=2, groups=in_channels)
        self.pw_1 = ConvBN(in_channels, half, 1, act="hardswish")
        self.pw_2_1 = ConvBN(in_channels, half, 1, act="hardswish")
        self.dw_2 = ConvBN(half, half, 3, stride=2, groups=half)
        self.se = SqueezeExcite(half, gate_slope=HARDSIGMOID_SLOPE)
        self.pw_2_2 = ConvBN(half, half, 1, act="hardswish")
        self.concat_dw = ConvBN(out_channels, out_channels, 3, groups=out_channels, act="hardswish")
        self.concat_pw = ConvBN(out_channels, out_channels, 1, act="hardswish")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        left = self.pw_1(self.dw_1(x))
        right = self.pw_2_2(self.se(self.dw_2(self.pw_2_1(x))))
        return self.concat_pw(self.concat_dw(paddle.concat([left, right], axis=1)))


# --- the model -----------------------------------------------------------------------------

#: blocks per stage (the first downsamples), and each stage's width at scale 1.0
STAGE_REPEATS = (3, 7, 3)
STAGE_CHANNELS = (116, 232, 464)
STEM_CHANNELS = 24
HEAD_CHANNELS = 1024


class ESNet(Backbone):
    """ESNet: stem ``conv1`` (3x3 at stride 2) and a max-pool, 13 ``blocks`` in three stages
    (3, 7, 3), a 1x1 ``conv2`` to 1024 channels, global pooling, a 1x1 ``last_conv`` to
    ``class_expand`` channels with hard-swish and dropout, and the classifier ``fc``.

    ``scale``: the width of the stages. ``lr_mult_list`` has 4 values: the stem, then each
    stage (``conv2`` and the head keep the base rate); ``return_stages`` picks stages 0-2
    (PaddleClas's ``blocks[2]``, ``blocks[9]``, ``blocks[12]``).
    """

    def __init__(
        self, *, scale: float, dropout_prob: float = 0.2, class_expand: int = 1280, **contract: Any
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        check_rate(name, "dropout_prob", dropout_prob)
        check_positive_int(name, "class_expand", class_expand)

        self.conv1 = ConvBN(3, STEM_CHANNELS, 3, stride=2, act="hardswish")
        self.max_pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        blocks, stage_ends = [], []
        in_channels = STEM_CHANNELS
        for repeats, width in zip(STAGE_REPEATS, STAGE_CHANNELS):
            out_channels = make_divisible(width * scale)
            blocks.append(ESDownsample(in_channels, out_channels))
            blocks.extend(ESBlock(out_channels) for _ in range(repeats - 1))
            stage_ends.append(len(blocks) - 1)
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = ConvBN(in_channels, HEAD_CHANNELS, 1, act="hardswish")

        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.last_conv = nn.Conv2D(HEAD_CHANNELS, class_expand, 1, bias_attr=False)
        self.hardswish = nn.Hardswish()
        self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer") if dropout_prob else None
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = nn.Linear(class_expand, self.class_num)

        kaiming_init_conv_bn(self)
        exempt_norms_from_decay(self)
        stages = split_stages(blocks, stage_ends)
        self.finish(
            lr_groups={"stem": [self.conv1], **{f"stage{i}": stage for i, stage in enumerate(stages)}},
            stages=[stage[-1] for stage in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv2(self.blocks(self.max_pool(self.conv1(x))))
        x = self.hardswish(self.last_conv(self.avg_pool(x)))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(self.flatten(x))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its ESNet docs) ---------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {"ESNet_x0_25": 0.6248, "ESNet_x0_5": 0.6882, "ESNet_x0_75": 0.7224, "ESNet_x1_0": 0.7392},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "ESNet_x0_25": dict(scale=0.25),
    "ESNet_x0_5": dict(scale=0.5),
    "ESNet_x0_75": dict(scale=0.75),
    "ESNet_x1_0": dict(scale=1.0),
}

BUILDERS = builders(ESNet, VARIANTS, WEIGHTS)
