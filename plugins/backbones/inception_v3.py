"""Inception-v3 (Szegedy et al. 2015, https://arxiv.org/abs/1512.00567), weight-compatible
with PaddleClas 2.6's ``InceptionV3`` (legendary_models/inception_v3.py). Trained at
299x299; any input from 75x75 runs."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import ConvBN

# --- building blocks -----------------------------------------------------------------------


def same(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int]) -> ConvBN:
    """Conv-BN-ReLU keeping the size (stride 1, padding half the kernel)."""
    return ConvBN(in_channels, out_channels, kernel_size, act="relu")


def valid(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> ConvBN:
    """Conv-BN-ReLU without padding."""
    return ConvBN(in_channels, out_channels, kernel_size, stride=stride, padding=0, act="relu")


def _cat(*branches: paddle.Tensor) -> paddle.Tensor:
    return paddle.concat(branches, axis=1)


def _average_pool() -> nn.AvgPool2D:
    # the padded border counts in each average (exclusive=False), as PaddleClas trained
    return nn.AvgPool2D(3, stride=1, padding=1, exclusive=False)


class InceptionStem(nn.Layer):
    """Five conv-BN-ReLUs and two 3x3/2 max poolings: 299x299x3 -> 35x35x192."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_1a_3x3 = valid(3, 32, 3, stride=2)
        self.conv_2a_3x3 = valid(32, 32, 3)
        self.conv_2b_3x3 = same(32, 64, 3)
        self.max_pool = nn.MaxPool2D(3, stride=2)
        self.conv_3b_1x1 = same(64, 80, 1)
        self.conv_4a_3x3 = valid(80, 192, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.max_pool(self.conv_2b_3x3(self.conv_2a_3x3(self.conv_1a_3x3(x))))
        return self.max_pool(self.conv_4a_3x3(self.conv_3b_1x1(x)))


class InceptionA(nn.Layer):
    """35x35: 1x1; 1x1 -> 5x5; 1x1 -> 3x3 -> 3x3; average pool -> 1x1 (``pool_channels``)."""

    def __init__(self, in_channels: int, pool_channels: int) -> None:
        super().__init__()
        self.branch1x1 = same(in_channels, 64, 1)
        self.branch5x5_1 = same(in_channels, 48, 1)
        self.branch5x5_2 = same(48, 64, 5)
        self.branch3x3dbl_1 = same(in_channels, 64, 1)
        self.branch3x3dbl_2 = same(64, 96, 3)
        self.branch3x3dbl_3 = same(96, 96, 3)
        self.branch_pool = _average_pool()
        self.branch_pool_conv = same(in_channels, pool_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return _cat(
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool_conv(self.branch_pool(x)),
        )


class InceptionB(nn.Layer):
    """Reduction 35x35 -> 17x17: 3x3/2; 1x1 -> 3x3 -> 3x3/2; 3x3/2 max pool."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = valid(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = same(in_channels, 64, 1)
        self.branch3x3dbl_2 = same(64, 96, 3)
        self.branch3x3dbl_3 = valid(96, 96, 3, stride=2)
        self.branch_pool = nn.MaxPool2D(3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return _cat(
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(x),
        )


class InceptionC(nn.Layer):
    """17x17 with factorised 7x7 convs (``channels_7x7`` wide): 1x1; 1x1 -> 1x7 -> 7x1;
    1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7; average pool -> 1x1."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = same(in_channels, 192, 1)
        self.branch7x7_1 = same(in_channels, c7, 1)
        self.branch7x7_2 = same(c7, c7, (1, 7))
        self.branch7x7_3 = same(c7, 192, (7, 1))
        self.branch7x7dbl_1 = same(in_channels, c7, 1)
        self.branch7x7dbl_2 = same(c7, c7, (7, 1))
        self.branch7x7dbl_3 = same(c7, c7, (1, 7))
        self.branch7x7dbl_4 = same(c7, c7, (7, 1))
        self.branch7x7dbl_5 = same(c7, 192, (1, 7))
        self.branch_pool = _average_pool()
        self.branch_pool_conv = same(in_channels, 192, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        double = x
        for i in range(1, 6):
            double = getattr(self, f"branch7x7dbl_{i}")(double)
        return _cat(
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool_conv(self.branch_pool(x)),
        )


class InceptionD(nn.Layer):
    """Reduction 17x17 -> 8x8: 1x1 -> 3x3/2; 1x1 -> 1x7 -> 7x1 -> 3x3/2; 3x3/2 max pool."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = same(in_channels, 192, 1)
        self.branch3x3_2 = valid(192, 320, 3, stride=2)
        self.branch7x7x3_1 = same(in_channels, 192, 1)
        self.branch7x7x3_2 = same(192, 192, (1, 7))
        self.branch7x7x3_3 = same(192, 192, (7, 1))
        self.branch7x7x3_4 = valid(192, 192, 3, stride=2)
        self.branch_pool = nn.MaxPool2D(3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        seven = x
        for i in range(1, 5):
            seven = getattr(self, f"branch7x7x3_{i}")(seven)
        return _cat(self.branch3x3_2(self.branch3x3_1(x)), seven, self.branch_pool(x))


class InceptionE(nn.Layer):
    """8x8 with split 3x3 convs: 1x1; 1x1 -> (1x3, 3x1); 1x1 -> 3x3 -> (1x3, 3x1);
    average pool -> 1x1."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = same(in_channels, 320, 1)
        self.branch3x3_1 = same(in_channels, 384, 1)
        self.branch3x3_2a = same(384, 384, (1, 3))
        self.branch3x3_2b = same(384, 384, (3, 1))
        self.branch3x3dbl_1 = same(in_channels, 448, 1)
        self.branch3x3dbl_2 = same(448, 384, 3)
        self.branch3x3dbl_3a = same(384, 384, (1, 3))
        self.branch3x3dbl_3b = same(384, 384, (3, 1))
        self.branch_pool = _average_pool()
        self.branch_pool_conv = same(in_channels, 192, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        split = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return _cat(
            self.branch1x1(x),
            self.branch3x3_2a(split),
            self.branch3x3_2b(split),
            self.branch3x3dbl_3a(double),
            self.branch3x3dbl_3b(double),
            self.branch_pool_conv(self.branch_pool(x)),
        )


# --- the model -----------------------------------------------------------------------------

#: the eleven Inception modules, in order, as (class, its arguments)
BLOCKS = (
    (InceptionA, 192, 32), (InceptionA, 256, 64), (InceptionA, 288, 64),
    (InceptionB, 288),
    (InceptionC, 768, 128), (InceptionC, 768, 160), (InceptionC, 768, 160), (InceptionC, 768, 192),
    (InceptionD, 768),
    (InceptionE, 1280), (InceptionE, 2048),
)
#: the last module of each stage (PaddleClas's stages_pattern)
STAGE_ENDS = (2, 3, 7, 8, 10)


class InceptionV3(Backbone):
    """Inception-v3: ``inception_stem``, eleven modules in ``inception_block_list`` (3 A,
    reduction B, 4 C, reduction D, 2 E), global pooling, dropout 0.2 and the classifier ``fc``.

    ``lr_mult_list`` has 6 values: the stem, then each stage; ``return_stages`` picks stages
    0-4, the outputs of modules 2, 3, 7, 8 and 10 (PaddleClas's stages; 35x35, 17x17,
    17x17, 8x8 and 8x8 at 299x299).
    """

    def __init__(self, **contract: Any) -> None:
        super().__init__(**contract)
        self.inception_stem = InceptionStem()
        self.inception_block_list = nn.LayerList([block(*args) for block, *args in BLOCKS])
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(p=0.2, mode="downscale_in_infer")
        self.fc = uniform_linear(2048, self.class_num)

        blocks = list(self.inception_block_list)
        starts = (0,) + tuple(end + 1 for end in STAGE_ENDS[:-1])
        groups = {"stem": [self.inception_stem]}
        groups.update({f"stage{i}": blocks[start : end + 1] for i, (start, end) in enumerate(zip(starts, STAGE_ENDS))})
        self.finish(lr_groups=groups, stages=[blocks[end] for end in STAGE_ENDS])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.inception_stem(x)
        for block in self.inception_block_list:
            x = block(x)
        return self.fc(self.dropout(paddle.flatten(self.avg_pool(x), start_axis=1)))


#: the stem's unpadded convolutions and the two reductions need 75 pixels
MIN_INPUT_SIZE = 75

# --- pretrained weights (PaddleClas 2.6 legendary models; top-1 from its model list) ------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams", {"InceptionV3": 0.7914}, input_size=299
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "InceptionV3": dict(),
}

BUILDERS = builders(InceptionV3, VARIANTS, WEIGHTS)
