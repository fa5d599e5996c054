"""GhostNet (Han et al. 2020, https://arxiv.org/abs/1911.11907): ghost modules make half of
each layer's features with cheap depthwise convs; weight-compatible with PaddleClas 2.6's
``GhostNet_x*`` (model_zoo/ghostnet.py)."""
from __future__ import annotations

import math
from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, split_stages
from corolla.plugins.backbones._init import kaiming_init_conv_bn, uniform_linear
from corolla.plugins.backbones._layers import ZooConvBN, make_divisible
from corolla.plugins.backbones._regularize import exempt_norms_from_decay

# --- building blocks -----------------------------------------------------------------------


class SqueezeExcite(nn.Layer):
    """Channel attention through Linear layers: pooled features -> ``squeeze`` -> ReLU ->
    ``excitation`` -> clipped to [0, 1] as the gate."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.pool2d_gap = nn.AdaptiveAvgPool2D(1)
        self.squeeze = uniform_linear(channels, channels // reduction)
        self.excitation = uniform_linear(channels // reduction, channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self.excitation(nn.functional.relu(self.squeeze(self.pool2d_gap(x).flatten(1))))
        return x * gate.clip(0.0, 1.0).unsqueeze([2, 3])


class GhostModule(nn.Layer):
    """A ``primary_conv`` to half of ``out_channels`` (rounded up), and a cheap 3x3 depthwise
    ``cheap_operation`` on its output for the other half; both outputs concatenated."""

    def __init__(self, in_channels: int, out_channels: int, *, relu: bool) -> None:
        super().__init__()
        primary = math.ceil(out_channels / 2)
        act = "relu" if relu else None
        self.primary_conv = ZooConvBN(in_channels, primary, 1, act=act)
        self.cheap_operation = ZooConvBN(primary, primary, 3, groups=primary, act=act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.primary_conv(x)
        return paddle.concat([x, self.cheap_operation(x)], axis=1)


class GhostBottleneck(nn.Layer):
    """Ghost module (expansion), a depthwise conv at stride 2 when downsampling, optional
    squeeze-excitation, a linear ghost module (projection); the shortcut is the input, or a
    depthwise + 1x1 conv where the shape changes."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, *, kernel_size: int, stride: int, use_se: bool) -> None:
        super().__init__()
        self.ghost_module_1 = GhostModule(in_channels, hidden, relu=True)
        self.depthwise_conv = ZooConvBN(hidden, hidden, kernel_size, stride=stride, groups=hidden) if stride == 2 else None
        self.se_block = SqueezeExcite(hidden) if use_se else None
        self.ghost_module_2 = GhostModule(hidden, out_channels, relu=False)
        self.has_identity = stride == 1 and in_channels == out_channels
        if not self.has_identity:
            self.shortcut_depthwise = ZooConvBN(in_channels, in_channels, kernel_size, stride=stride, groups=in_channels)
            self.shortcut_conv = ZooConvBN(in_channels, out_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.ghost_module_1(x)
        if self.depthwise_conv is not None:
            y = self.depthwise_conv(y)
        if self.se_block is not None:
            y = self.se_block(y)
        y = self.ghost_module_2(y)
        return y + (x if self.has_identity else self.shortcut_conv(self.shortcut_depthwise(x)))


# --- the model -----------------------------------------------------------------------------

#: bottlenecks as (kernel, hidden channels, out channels, use_se, stride) at scale 1.0
BLOCKS: tuple[tuple[int, int, int, bool, int], ...] = (
    (3, 16, 16, False, 1),
    (3, 48, 24, False, 2),
    (3, 72, 24, False, 1),
    (5, 72, 40, True, 2),
    (5, 120, 40, True, 1),
    (3, 240, 80, False, 2),
    (3, 200, 80, False, 1),
    (3, 184, 80, False, 1),
    (3, 184, 80, False, 1),
    (3, 480, 112, True, 1),
    (3, 672, 112, True, 1),
    (5, 672, 160, True, 2),
    (5, 960, 160, False, 1),
    (5, 960, 160, True, 1),
    (5, 960, 160, False, 1),
    (5, 960, 160, True, 1),
)
#: index of the last bottleneck of each stage (each later stage starts by halving the map)
STAGE_ENDS = (0, 2, 4, 10, 15)
STEM_CHANNELS = 16
HEAD_CHANNELS = 1280


class GhostNet(Backbone):
    """GhostNet: stem ``conv1`` (3x3 at stride 2), 16 ghost bottlenecks
    ``_ghostbottleneck_0..15``, a 1x1 ``conv_last``, global pooling, a 1x1 conv-BN-ReLU
    ``fc_0`` to 1280 channels, dropout 0.2 and the classifier ``fc_1``.

    ``scale``: the width (channels rounded to multiples of 4). The bottlenecks form 5
    stages, each ending before the map halves; ``lr_mult_list`` has 6 values (the stem,
    then each stage; the head keeps the base rate), ``return_stages`` picks stages 0-4.
    """

    def __init__(self, *, scale: float, **contract: Any) -> None:
        super().__init__(**contract)
        in_channels = make_divisible(STEM_CHANNELS * scale, 4)
        self.conv1 = ZooConvBN(3, in_channels, 3, stride=2, act="relu")
        blocks = []
        for i, (kernel, hidden, out, use_se, stride) in enumerate(BLOCKS):
            out_channels = make_divisible(out * scale, 4)
            block = GhostBottleneck(
                in_channels, make_divisible(hidden * scale, 4), out_channels, kernel_size=kernel, stride=stride, use_se=use_se
            )
            blocks.append(self.add_sublayer(f"_ghostbottleneck_{i}", block))
            in_channels = out_channels
        self._blocks = blocks

        last_channels = make_divisible(BLOCKS[-1][1] * scale, 4)
        self.conv_last = ZooConvBN(in_channels, last_channels, 1, act="relu")
        self.pool2d_gap = nn.AdaptiveAvgPool2D(1)
        self.fc_0 = ZooConvBN(last_channels, HEAD_CHANNELS, 1, act="relu")
        self.dropout = nn.Dropout(p=0.2)
        self.fc_1 = uniform_linear(HEAD_CHANNELS, self.class_num)

        kaiming_init_conv_bn(self)
        exempt_norms_from_decay(self)
        stages = split_stages(blocks, STAGE_ENDS)
        self.finish(
            lr_groups={"stem": [self.conv1], **{f"stage{i}": stage for i, stage in enumerate(stages)}},
            stages=[stage[-1] for stage in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv1(x)
        for block in self._blocks:
            x = block(x)
        x = self.fc_0(self.pool2d_gap(self.conv_last(x)))
        return self.fc_1(self.dropout(x).flatten(1))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) --------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"GhostNet_x0_5": 0.6688, "GhostNet_x1_0": 0.7402, "GhostNet_x1_3": 0.7579, "GhostNet_x1_3_ssld": 0.7938},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "GhostNet_x0_5": dict(scale=0.5),
    "GhostNet_x1_0": dict(scale=1.0),
    "GhostNet_x1_3": dict(scale=1.3),
}

BUILDERS = builders(GhostNet, VARIANTS, WEIGHTS)
