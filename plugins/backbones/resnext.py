"""ResNeXt (Xie et al. 2017, https://arxiv.org/abs/1611.05431): ResNet bottlenecks with grouped
3x3 convolutions, weight-compatible with PaddleClas 2.6's ``ResNeXt*`` (model_zoo/resnext.py,
resnext_vd.py, resnext101_wsl.py).

``NxMd``: N groups of width M in the first stage. The ``_vd`` variants use a deep 3-conv
stem and average-pool shortcuts (ResNet-D, He et al. 2019); they and the plain ones are
:class:`~._zoo_resnet.ResNeXt`. The ``_wsl`` variants (Mahajan et al. 2018, weakly supervised
pre-training on Instagram hashtags) are :class:`ResNeXtWSL`, with PyTorch-style names.
"""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._layers import conv_bn
from corolla.plugins.backbones._zoo_resnet import ResNeXt

# --- the weakly supervised ResNeXt-101 ---------------------------------------------------------


class WSLConvBN(nn.Layer):
    """conv -> BN [-> ReLU], with parameters ``_conv.weight`` and ``_bn.*``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1, relu: bool = False
    ) -> None:
        super().__init__()
        self._conv, self._bn = conv_bn(in_channels, out_channels, kernel_size, stride=stride, groups=groups)
        self.relu = relu

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._bn(self._conv(x))
        return nn.functional.relu(x) if self.relu else x


class WSLProjection(nn.Layer):
    """The 1x1 conv-BN of a shortcut that changes shape, nested one level (``_short._conv``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self._conv = WSLConvBN(in_channels, out_channels, 1, stride=stride)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._conv(x)


class WSLBottleneck(nn.Layer):
    """1x1 -> grouped 3x3 (carries the stride) -> 1x1, plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, width: int, out_channels: int, *, stride: int, groups: int) -> None:
        super().__init__()
        self._conv0 = WSLConvBN(in_channels, width, 1, relu=True)
        self._conv1 = WSLConvBN(width, width, 3, stride=stride, groups=groups, relu=True)
        self._conv2 = WSLConvBN(width, out_channels, 1)
        projects = stride != 1 or in_channels != out_channels
        self._short = WSLProjection(in_channels, out_channels, stride) if projects else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self._conv2(self._conv1(self._conv0(x)))
        return nn.functional.relu(y + (x if self._short is None else self._short(x)))


#: bottlenecks per stage of ResNeXt-101
WSL_DEPTH = (3, 4, 23, 3)
WSL_GROUPS = 32


class ResNeXtWSL(Backbone):
    """ResNeXt-101 with 32 groups of ``width`` channels (``_conv_stem``, ``_pool``, blocks
    ``_conv<stage>_<index>``, classifier ``_out``), PaddleClas's port of the WSL models.

    Stage s's bottlenecks are 32 x ``width`` x 2^s wide inside and 256 x 2^s outside.
    ``lr_mult_list`` has 5 values: stem, stage0-stage3; ``return_stages`` picks among the 4 stages.
    """

    def __init__(self, *, width: int, **contract: Any) -> None:
        super().__init__(**contract)
        self._conv_stem = WSLConvBN(3, 64, 7, stride=2, relu=True)
        self._pool = nn.MaxPool2D(3, stride=2, padding=1)
        self._stages: list[list[WSLBottleneck]] = []
        channels = 64
        for stage, count in enumerate(WSL_DEPTH):
            blocks = []
            for i in range(count):
                block = WSLBottleneck(
                    channels, WSL_GROUPS * width * 2**stage, 256 * 2**stage,
                    stride=2 if i == 0 and stage > 0 else 1, groups=WSL_GROUPS,
                )
                blocks.append(self.add_sublayer(f"_conv{stage + 1}_{i}", block))
                channels = 256 * 2**stage
            self._stages.append(blocks)
        self._avg_pool = nn.AdaptiveAvgPool2D(1)
        self._out = nn.Linear(channels, self.class_num)

        self.finish(
            lr_groups={"stem": [self._conv_stem], **{f"stage{i}": blocks for i, blocks in enumerate(self._stages)}},
            stages=[blocks[-1] for blocks in self._stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._pool(self._conv_stem(x))
        for blocks in self._stages:
            for block in blocks:
                x = block(x)
        return self._out(self._avg_pool(x).flatten(1))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "ResNeXt50_32x4d": 0.7775,
        "ResNeXt50_vd_32x4d": 0.7956,
        "ResNeXt50_64x4d": 0.7843,
        "ResNeXt50_vd_64x4d": 0.8012,
        "ResNeXt101_32x4d": 0.7865,
        "ResNeXt101_vd_32x4d": 0.8033,
        "ResNeXt101_64x4d": 0.7835,
        "ResNeXt101_vd_64x4d": 0.8078,
        "ResNeXt152_32x4d": 0.7898,
        "ResNeXt152_vd_32x4d": 0.8072,
        "ResNeXt152_64x4d": 0.7951,
        "ResNeXt152_vd_64x4d": 0.8108,
        "ResNeXt101_32x8d_wsl": 0.8255,
        "ResNeXt101_32x32d_wsl": 0.8497,
        "ResNeXt101_32x48d_wsl": 0.8537,
    },
) | weights_table(  # PaddleClas's file name for this one drops the "d"
    MODEL_ZOO_URL + "ResNeXt101_32x16_wsl_pretrained.pdparams", {"ResNeXt101_32x16d_wsl": 0.8424}
)

# --- registered names ---------------------------------------------------------------------------

_PLAIN = dict(deep_stem=None, avg_down=False, se_reduction=None)
_VD = dict(deep_stem=(32, 32, 64), avg_down=True, se_reduction=None)

VARIANTS = {
    "ResNeXt50_32x4d": dict(depth=50, groups=32, group_width=4, **_PLAIN),
    "ResNeXt50_vd_32x4d": dict(depth=50, groups=32, group_width=4, **_VD),
    "ResNeXt50_64x4d": dict(depth=50, groups=64, group_width=4, **_PLAIN),
    "ResNeXt50_vd_64x4d": dict(depth=50, groups=64, group_width=4, **_VD),
    "ResNeXt101_32x4d": dict(depth=101, groups=32, group_width=4, **_PLAIN),
    "ResNeXt101_vd_32x4d": dict(depth=101, groups=32, group_width=4, **_VD),
    "ResNeXt101_64x4d": dict(depth=101, groups=64, group_width=4, **_PLAIN),
    "ResNeXt101_vd_64x4d": dict(depth=101, groups=64, group_width=4, **_VD),
    "ResNeXt152_32x4d": dict(depth=152, groups=32, group_width=4, **_PLAIN),
    "ResNeXt152_vd_32x4d": dict(depth=152, groups=32, group_width=4, **_VD),
    "ResNeXt152_64x4d": dict(depth=152, groups=64, group_width=4, **_PLAIN),
    "ResNeXt152_vd_64x4d": dict(depth=152, groups=64, group_width=4, **_VD),
    "ResNeXt101_32x8d_wsl": dict(model=ResNeXtWSL, width=8),
    "ResNeXt101_32x16d_wsl": dict(model=ResNeXtWSL, width=16),
    "ResNeXt101_32x32d_wsl": dict(model=ResNeXtWSL, width=32),
    "ResNeXt101_32x48d_wsl": dict(model=ResNeXtWSL, width=48),
}

BUILDERS = builders(ResNeXt, VARIANTS, WEIGHTS)
