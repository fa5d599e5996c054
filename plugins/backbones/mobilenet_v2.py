"""MobileNetV2 (Sandler et al. 2018, https://arxiv.org/abs/1801.04381), weight-compatible
with PaddleClas 2.6's ``MobileNetV2`` and ``MobileNetV2_x*`` (its ``model_zoo`` version).

PaddleClas gives every parameter a fixed global name, so it can build only one such model per
process; here the state-dict keys are the same (they come from the sub-layer names), but the
parameters are named by Paddle, so any number of instances coexist.
"""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, split_stages
from corolla.plugins.backbones._layers import ZooConvBN

# --- building blocks -----------------------------------------------------------


class InvertedResidualUnit(nn.Layer):
    """1x1 expansion (ReLU6), 3x3 depthwise conv (ReLU6), linear 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, expansion: int) -> None:
        super().__init__()
        expanded = int(round(in_channels * expansion))
        self._expand_conv = ZooConvBN(in_channels, expanded, 1, act="relu6")
        self._bottleneck_conv = ZooConvBN(expanded, expanded, 3, stride=stride, groups=expanded, act="relu6")
        self._linear_conv = ZooConvBN(expanded, out_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._linear_conv(self._bottleneck_conv(self._expand_conv(x)))


class InvertedResidualGroup(nn.Layer):
    """``repeats`` units of one width: ``_first_block`` (may change width and stride), then
    ``{name}_2 .. {name}_{repeats}`` with a residual connection."""

    def __init__(
        self, name: str, in_channels: int, out_channels: int, *, repeats: int, stride: int, expansion: int
    ) -> None:
        super().__init__()
        self._first_block = InvertedResidualUnit(in_channels, out_channels, stride=stride, expansion=expansion)
        self._residual_blocks = [
            self.add_sublayer(
                f"{name}_{i}", InvertedResidualUnit(out_channels, out_channels, stride=1, expansion=expansion)
            )
            for i in range(2, repeats + 1)
        ]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._first_block(x)
        for block in self._residual_blocks:
            x = x + block(x)
        return x


# --- the model ---------------------------------------------------------------------

#: groups ``conv2 .. conv8`` as (expansion, out channels, repeats, stride) at scale 1.0
GROUPS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
#: index (into GROUPS) of the last group of each stage: each stage ends before a stride change
STAGE_ENDS = (0, 1, 2, 4, 6)


class MobileNetV2(Backbone):
    """Stem ``conv1``, inverted-residual groups ``conv2 .. conv8``, a 1x1 ``conv9``, global
    pooling and the classifier ``out``; ``scale`` is the width.

    ``lr_mult_list`` has 6 values: the stem, then the 5 stages (``conv2``, ``conv3``,
    ``conv4``, ``conv5-6``, ``conv7-8``; ``conv9`` and the classifier keep the base rate);
    ``return_stages`` picks stages 0-4.
    """

    def __init__(self, *, scale: float, **contract: Any) -> None:
        super().__init__(**contract)
        self.conv1 = ZooConvBN(3, int(32 * scale), 3, stride=2, act="relu6")
        in_channels = int(32 * scale)
        self._residual_groups = []
        for i, (expansion, out, repeats, stride) in enumerate(GROUPS):
            group_name = f"conv{i + 2}"
            group = InvertedResidualGroup(
                group_name, in_channels, int(out * scale), repeats=repeats, stride=stride, expansion=expansion
            )
            self._residual_groups.append(self.add_sublayer(group_name, group))
            in_channels = int(out * scale)
        # PaddleClas widens the last conv only above scale 1.0
        self.out_c = int(1280 * scale) if scale > 1.0 else 1280
        self.conv9 = ZooConvBN(in_channels, self.out_c, 1, act="relu6")
        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.out = nn.Linear(self.out_c, self.class_num)

        stages = split_stages(self._residual_groups, STAGE_ENDS)
        self.finish(
            lr_groups={"stem": [self.conv1], **{f"stage{i}": groups for i, groups in enumerate(stages)}},
            stages=[groups[-1] for groups in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv1(x)
        for group in self._residual_groups:
            x = group(x)
        return self.out(self.flatten(self.pool2d_avg(self.conv9(x))))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "MobileNetV2_x0_25": 0.5321,
        "MobileNetV2_x0_5": 0.6503,
        "MobileNetV2_x0_75": 0.6983,
        "MobileNetV2": 0.7215,
        "MobileNetV2_x1_5": 0.7412,
        "MobileNetV2_x2_0": 0.7523,
        "MobileNetV2_ssld": 0.7674,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "MobileNetV2_x0_25": dict(scale=0.25),
    "MobileNetV2_x0_5": dict(scale=0.5),
    "MobileNetV2_x0_75": dict(scale=0.75),
    "MobileNetV2": dict(scale=1.0),
    "MobileNetV2_x1_5": dict(scale=1.5),
    "MobileNetV2_x2_0": dict(scale=2.0),
}

BUILDERS = builders(MobileNetV2, VARIANTS, WEIGHTS)
