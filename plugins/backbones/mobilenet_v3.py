"""MobileNetV3 (Howard et al. 2019, https://arxiv.org/abs/1905.02244), small and large,
weight-compatible with PaddleClas 2.6's ``MobileNetV3_{small,large}_x*``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, split_stages
from corolla.plugins.backbones._layers import ConvBN, SqueezeExcite, activation, make_divisible
from corolla.plugins.backbones._regularize import exempt_norms_from_decay

# --- building blocks -----------------------------------------------------------


class ResidualUnit(nn.Layer):
    """Inverted residual: 1x1 expansion, depthwise conv, optional SE, linear 1x1 projection;
    the input is added back when the shape is unchanged."""

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, *,
        kernel_size: int, stride: int, use_se: bool, act: str,
    ) -> None:
        super().__init__()
        self.if_shortcut = stride == 1 and in_channels == out_channels
        self.expand_conv = ConvBN(in_channels, mid_channels, 1, act=act)
        self.bottleneck_conv = ConvBN(
            mid_channels, mid_channels, kernel_size, stride=stride, groups=mid_channels, act=act
        )
        self.mid_se = SqueezeExcite(mid_channels, gate_slope=0.2) if use_se else None
        self.linear_conv = ConvBN(mid_channels, out_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.bottleneck_conv(self.expand_conv(x))
        if self.mid_se is not None:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        return x + y if self.if_shortcut else y


# --- the model ---------------------------------------------------------------------

#: blocks as (kernel, expanded channels, out channels, use_se, activation, stride) at scale 1.0
LARGE: tuple[tuple[int, int, int, bool, str, int], ...] = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
)
SMALL: tuple[tuple[int, int, int, bool, str, int], ...] = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)
#: size -> (blocks, index of the last block of each stage (PaddleClas's stage patterns), squeeze channels)
SIZES = {
    "large": (LARGE, (0, 2, 5, 11, 14), 960),
    "small": (SMALL, (0, 2, 7, 10), 576),
}
STEM_CHANNELS = 16


class MobileNetV3(Backbone):
    """Stem ``conv``, the inverted-residual ``blocks``, a 1x1 ``last_second_conv``, global
    pooling, a 1x1 ``last_conv`` to ``class_expand`` channels, dropout (``dropout_prob``,
    None for none) and the classifier ``fc``.

    ``size`` is ``"large"`` or ``"small"``, ``scale`` the width. The blocks form stages (5 for
    large, 4 for small) ending where PaddleClas's stage patterns do; ``lr_mult_list`` has one
    value for the stem and one per stage (the head keeps the base rate), ``return_stages``
    picks stages by index.
    """

    def __init__(
        self, *, size: str, scale: float, class_expand: int = 1280, dropout_prob: float | None = 0.2, **contract: Any
    ) -> None:
        super().__init__(**contract)
        blocks, stage_ends, squeeze = SIZES[size]
        self.conv = ConvBN(3, make_divisible(STEM_CHANNELS * scale), 3, stride=2, act="hardswish")
        units = []
        in_channels = STEM_CHANNELS
        for k, expanded, out, se, act, stride in blocks:
            units.append(
                ResidualUnit(
                    make_divisible(in_channels * scale), make_divisible(expanded * scale), make_divisible(out * scale),
                    kernel_size=k, stride=stride, use_se=se, act=act,
                )
            )
            in_channels = out
        self.blocks = nn.Sequential(*units)

        self.last_second_conv = ConvBN(
            make_divisible(in_channels * scale), make_divisible(squeeze * scale), 1, act="hardswish"
        )
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.last_conv = nn.Conv2D(make_divisible(squeeze * scale), class_expand, 1, bias_attr=False)
        self.hardswish = activation("hardswish")
        self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer") if dropout_prob else None
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = nn.Linear(class_expand, self.class_num)

        exempt_norms_from_decay(self)
        stages = split_stages(self.blocks, stage_ends)
        self.finish(
            lr_groups={"stem": [self.conv], **{f"stage{i}": units for i, units in enumerate(stages)}},
            stages=[units[-1] for units in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.last_second_conv(self.blocks(self.conv(x)))
        x = self.hardswish(self.last_conv(self.avg_pool(x)))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(self.flatten(x))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {
        "MobileNetV3_small_x0_35": 0.5303,
        "MobileNetV3_small_x0_5": 0.5921,
        "MobileNetV3_small_x0_75": 0.6602,
        "MobileNetV3_small_x1_0": 0.6824,
        "MobileNetV3_small_x1_25": 0.7067,
        "MobileNetV3_large_x0_35": 0.6432,
        "MobileNetV3_large_x0_5": 0.6924,
        "MobileNetV3_large_x0_75": 0.7314,
        "MobileNetV3_large_x1_0": 0.7532,
        "MobileNetV3_large_x1_25": 0.7641,
        "MobileNetV3_small_x0_35_ssld": 0.5555,
        "MobileNetV3_small_x1_0_ssld": 0.7129,
        "MobileNetV3_large_x1_0_ssld": 0.7896,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "MobileNetV3_small_x0_35": dict(size="small", scale=0.35),
    "MobileNetV3_small_x0_5": dict(size="small", scale=0.5),
    "MobileNetV3_small_x0_75": dict(size="small", scale=0.75),
    "MobileNetV3_small_x1_0": dict(size="small", scale=1.0),
    "MobileNetV3_small_x1_25": dict(size="small", scale=1.25),
    "MobileNetV3_large_x0_35": dict(size="large", scale=0.35),
    "MobileNetV3_large_x0_5": dict(size="large", scale=0.5),
    "MobileNetV3_large_x0_75": dict(size="large", scale=0.75),
    "MobileNetV3_large_x1_0": dict(size="large", scale=1.0),
    "MobileNetV3_large_x1_25": dict(size="large", scale=1.25),
}

BUILDERS = builders(MobileNetV3, VARIANTS, WEIGHTS)
