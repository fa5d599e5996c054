"""ShuffleNetV2 (Ma et al. 2018, https://arxiv.org/abs/1807.11164), weight-compatible with
PaddleClas 2.6's ``ShuffleNetV2_x*`` (its ``model_zoo`` version; any number of instances).

Channels are shuffled by reshape and transpose (as PaddleClas does), not Paddle's
``channel_shuffle`` op, which paddle2onnx 2.1 cannot convert to ONNX."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, split_stages
from corolla.plugins.backbones._checks import check_choice
from corolla.plugins.backbones._init import kaiming_init_conv_bn
from corolla.plugins.backbones._layers import ZooConvBN, channel_shuffle

# --- building blocks -----------------------------------------------------------


class InvertedResidual(nn.Layer):
    """Stride-1 unit: half the channels pass through, the other half go through
    1x1 -> 3x3 depthwise -> 1x1; the halves are concatenated and shuffled."""

    def __init__(self, channels: int, *, act: str) -> None:
        super().__init__()
        half = channels // 2
        self._conv_pw = ZooConvBN(half, half, 1, act=act)
        self._conv_dw = ZooConvBN(half, half, 3, groups=half)
        self._conv_linear = ZooConvBN(half, half, 1, act=act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        kept, branch = paddle.split(x, 2, axis=1)
        branch = self._conv_linear(self._conv_dw(self._conv_pw(branch)))
        return channel_shuffle(paddle.concat([kept, branch], axis=1), 2)


class InvertedResidualDS(nn.Layer):
    """Down-sampling unit: two strided branches, each producing half the output channels."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, act: str) -> None:
        super().__init__()
        half = out_channels // 2
        self._conv_dw_1 = ZooConvBN(in_channels, in_channels, 3, stride=stride, groups=in_channels)
        self._conv_linear_1 = ZooConvBN(in_channels, half, 1, act=act)
        self._conv_pw_2 = ZooConvBN(in_channels, half, 1, act=act)
        self._conv_dw_2 = ZooConvBN(half, half, 3, stride=stride, groups=half)
        self._conv_linear_2 = ZooConvBN(half, half, 1, act=act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        left = self._conv_linear_1(self._conv_dw_1(x))
        right = self._conv_linear_2(self._conv_dw_2(self._conv_pw_2(x)))
        return channel_shuffle(paddle.concat([left, right], axis=1), 2)


# --- the model ---------------------------------------------------------------------

#: scale -> channels of (stem, stage 2, stage 3, stage 4, last conv); PaddleClas's table
CHANNELS: dict[float, tuple[int, int, int, int, int]] = {
    0.25: (24, 24, 48, 96, 512),
    0.33: (24, 32, 64, 128, 512),
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
#: units per stage (stages 2, 3 and 4; each starts with a down-sampling unit)
REPEATS = (4, 8, 4)
#: index of the last unit of each stage in the flat unit list
STAGE_ENDS = tuple(sum(REPEATS[: i + 1]) - 1 for i in range(len(REPEATS)))
ACTIVATIONS = ("relu", "swish")


class ShuffleNetV2(Backbone):
    """Stem ``_conv1`` + max pool, the units ``2_1 .. 4_4`` of stages 2-4, a 1x1 ``_last_conv``,
    global pooling and the classifier ``_fc``. ``scale`` is a key of ``CHANNELS``; ``act`` is
    relu or swish.

    ``lr_mult_list`` has 4 values: the stem, then stages 2, 3 and 4 (the head keeps the base
    rate); ``return_stages`` picks stages 0-2, which are the paper's stages 2, 3 and 4.
    """

    def __init__(self, *, scale: float, act: str = "relu", **contract: Any) -> None:
        super().__init__(**contract)
        check_choice(contract["name"], "act", act, ACTIVATIONS)
        stem, *stage_channels, last = CHANNELS[scale]

        self._conv1 = ZooConvBN(3, stem, 3, stride=2, act=act)
        self._max_pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self._units = []
        in_channels = stem
        for stage, (repeats, channels) in enumerate(zip(REPEATS, stage_channels, strict=True), start=2):
            for i in range(1, repeats + 1):
                unit = (
                    InvertedResidualDS(in_channels, channels, stride=2, act=act)
                    if i == 1
                    else InvertedResidual(channels, act=act)
                )
                self._units.append(self.add_sublayer(f"{stage}_{i}", unit))
            in_channels = channels
        self._last_conv = ZooConvBN(in_channels, last, 1, act=act)
        self._pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self._fc = nn.Linear(last, self.class_num)

        kaiming_init_conv_bn(self)
        # corolla numbers the paper's stages 2, 3 and 4 as stage0..stage2
        stages = split_stages(self._units, STAGE_ENDS)
        self.finish(
            lr_groups={"stem": [self._conv1], **{f"stage{i}": units for i, units in enumerate(stages)}},
            stages=[units[-1] for units in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._max_pool(self._conv1(x))
        for unit in self._units:
            x = unit(x)
        return self._fc(self.flatten(self._pool2d_avg(self._last_conv(x))))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "ShuffleNetV2_x0_25": 0.4990,
        "ShuffleNetV2_x0_33": 0.5373,
        "ShuffleNetV2_x0_5": 0.6032,
        "ShuffleNetV2_x1_0": 0.6880,
        "ShuffleNetV2_x1_5": 0.7163,
        "ShuffleNetV2_x2_0": 0.7315,
        "ShuffleNetV2_swish": 0.7003,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "ShuffleNetV2_x0_25": dict(scale=0.25),
    "ShuffleNetV2_x0_33": dict(scale=0.33),
    "ShuffleNetV2_x0_5": dict(scale=0.5),
    "ShuffleNetV2_x1_0": dict(scale=1.0),
    "ShuffleNetV2_x1_5": dict(scale=1.5),
    "ShuffleNetV2_x2_0": dict(scale=2.0),
    # seed 002's "ShuffleNetV2" (70.03% top-1, "uses swish") is this model
    "ShuffleNetV2_swish": dict(scale=1.0, act="swish"),
}

BUILDERS = builders(ShuffleNetV2, VARIANTS, WEIGHTS)
