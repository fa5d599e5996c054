"""MobileNeXt (Zhou et al. 2020, https://arxiv.org/abs/2007.02269): sandglass blocks, which
keep the shortcut on the wide tensors and do the depthwise convs there; weight-compatible
with PaddleClas 2.6's ``MobileNeXt_x*`` (model_zoo/mobilenext.py)."""
from __future__ import annotations

import math
from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import init_convs_fan_out
from corolla.plugins.backbones._layers import LeanBatchNorm2D, make_divisible

# --- building blocks -----------------------------------------------------------------------


def _conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1) -> nn.Conv2D:
    return nn.Conv2D(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias_attr=False
    )


def _depthwise(channels: int, stride: int) -> list[nn.Layer]:
    return [_conv(channels, channels, 3, stride=stride, groups=channels), LeanBatchNorm2D(channels)]


class SandglassBlock(nn.Layer):
    """Optional 3x3 depthwise conv-BN-ReLU6 on the input, a linear 1x1 reduction to
    ``hidden`` channels, a 1x1 expansion to ``out_channels`` with ReLU6, and an optional
    linear 3x3 depthwise conv (which carries the stride), as one ``conv`` sequence; the
    input is added back where PaddleClas does.

    Which convs exist follows PaddleClas: the first block (``expand_ratio`` 2) has both
    depthwise convs; a block that changes the width has only the last one at stride 2 and
    none at stride 1, unless ``keep_3x3``; every other block has both, at stride 1, and a
    shortcut unless ``keep_3x3``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, expand_ratio: int, keep_3x3: bool = False) -> None:
        super().__init__()
        hidden = in_channels // expand_ratio
        if hidden < out_channels / 6:
            hidden = make_divisible(math.ceil(out_channels / 6), 16)
        self.identity = False
        if expand_ratio == 2:
            leading, trailing_stride = True, stride
        elif in_channels != out_channels and not keep_3x3:
            leading, trailing_stride = False, (stride if stride == 2 else None)
        else:
            leading, trailing_stride = True, 1
            self.identity = not keep_3x3
        layers: list[nn.Layer] = []
        if leading:
            layers += [*_depthwise(in_channels, 1), nn.ReLU6()]
        layers += [
            _conv(in_channels, hidden, 1), LeanBatchNorm2D(hidden),
            _conv(hidden, out_channels, 1), LeanBatchNorm2D(out_channels), nn.ReLU6(),
        ]  # fmt: skip
        if trailing_stride:
            layers += _depthwise(out_channels, trailing_stride)
        self.conv = nn.Sequential(*layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.conv(x)
        return x + y if self.identity else y


# --- the model -----------------------------------------------------------------------------

#: block groups as (expand ratio, out channels at width 1.0, blocks, stride of the first)
GROUPS: tuple[tuple[int, int, int, int], ...] = (
    (2, 96, 1, 2),
    (6, 144, 1, 1),
    (6, 192, 3, 2),
    (6, 288, 3, 2),
    (6, 384, 4, 1),
    (6, 576, 4, 2),
    (6, 960, 3, 1),
    (6, 1280, 1, 1),
)
STEM_CHANNELS = 32


class MobileNeXt(Backbone):
    """MobileNeXt: ``features`` (a 3x3 conv-BN-ReLU6 stem at stride 2, then 20 sandglass
    blocks), global pooling, dropout 0.2 and the classifier ``classifier[1]``.

    ``width_mult``: the width (the last 1280 channels are kept below 1.0). The blocks form
    4 stages, each ending before the map halves; ``lr_mult_list`` has 5 values (the stem,
    then each stage), ``return_stages`` picks stages 0-3.
    """

    def __init__(self, *, width_mult: float, **contract: Any) -> None:
        super().__init__(**contract)
        in_channels = make_divisible(STEM_CHANNELS * width_mult)
        stem = nn.Sequential(_conv(3, in_channels, 3, stride=2), LeanBatchNorm2D(in_channels), nn.ReLU6())
        blocks, strides = [], []
        for expand_ratio, channels, count, stride in GROUPS:
            out_channels = 1280 if channels == 1280 and width_mult < 1 else make_divisible(channels * width_mult)
            for i in range(count):
                blocks.append(
                    SandglassBlock(
                        in_channels, out_channels, stride=stride if i == 0 else 1, expand_ratio=expand_ratio,
                        keep_3x3=i == 0 and count == 1 and stride == 1,
                    )
                )
                strides.append(stride if i == 0 else 1)
                in_channels = out_channels
        self.features = nn.Sequential(stem, *blocks)
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(in_channels, self.class_num))
        init_convs_fan_out(self, per_group=False, zero_bias=False, linear_std=0.01)

        ends = [i - 1 for i, stride in enumerate(strides) if i > 0 and stride == 2] + [len(blocks) - 1]
        starts = [0] + [end + 1 for end in ends[:-1]]
        self.finish(
            lr_groups={
                "stem": [stem],
                **{f"stage{i}": blocks[start : end + 1] for i, (start, end) in enumerate(zip(starts, ends))},
            },
            stages=[blocks[end] for end in ends],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


# --- pretrained weights (PaddleClas 2.6 model zoo: x1_0 only; no top-1 in its docs) -------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"MobileNeXt_x1_0": None})

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "MobileNeXt_x0_35": dict(width_mult=0.35),
    "MobileNeXt_x0_5": dict(width_mult=0.5),
    "MobileNeXt_x0_75": dict(width_mult=0.75),
    "MobileNeXt_x1_0": dict(width_mult=1.0),
    "MobileNeXt_x1_4": dict(width_mult=1.4),
}

BUILDERS = builders(MobileNeXt, VARIANTS, WEIGHTS)
