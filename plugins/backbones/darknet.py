"""DarkNet-53 (Redmon & Farhadi 2018, https://arxiv.org/abs/1804.02767), the YOLOv3
backbone, weight-compatible with PaddleClas 2.6's ``DarkNet53`` (model_zoo/darknet.py).
Trained at 256x256."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import STABLE_BATCHNORM_SIZE, Backbone, builders
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import conv_bn

# --- building blocks -----------------------------------------------------------------------


class ConvBNReLU(nn.Layer):
    """Bias-free conv, BN, ReLU (``_conv``, ``_bn``); PaddleClas's DarkNet53 uses ReLU, not leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self._conv, self._bn = conv_bn(in_channels, out_channels, kernel_size, stride=stride)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.relu(self._bn(self._conv(x)))


class Residual(nn.Layer):
    """1x1 conv to half the channels, 3x3 conv back (``_conv1``, ``_conv2``), plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self._conv1 = ConvBNReLU(channels, channels // 2, 1)
        self._conv2 = ConvBNReLU(channels // 2, channels, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self._conv2(self._conv1(x))


# --- the model -----------------------------------------------------------------------------

#: per stage: (channels, residual blocks); each stage starts with a 3x3/2 conv to its width
STAGES = ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))


class DarkNet53(Backbone):
    """DarkNet-53: a 3x3 conv ``_conv1`` (32 channels), then five stages, each a 3x3/2 conv
    (``_conv2`` for the first, ``_downsample_<i-1>`` for the others) and residual blocks
    ``_basic_block_<i><j>``; global pooling and the classifier ``_out``.

    ``lr_mult_list`` has 6 values: the stem conv, then each stage; ``return_stages`` picks
    stages 0-4 (strides 2 to 32).
    """

    def __init__(self, **contract: Any) -> None:
        super().__init__(**contract)
        self._conv1 = ConvBNReLU(3, 32, 3)
        groups: dict[str, list[nn.Layer]] = {"stem": [self._conv1]}
        self.blocks: list[nn.Layer] = []
        channels = 32
        for i, (width, depth) in enumerate(STAGES):
            down_name = "_conv2" if i == 0 else f"_downsample_{i - 1}"
            down = self.add_sublayer(down_name, ConvBNReLU(channels, width, 3, stride=2))
            residuals = [self.add_sublayer(f"_basic_block_{i}{j + 1}", Residual(width)) for j in range(depth)]
            groups[f"stage{i}"] = [down, *residuals]
            self.blocks += groups[f"stage{i}"]
            channels = width
        self._pool = nn.AdaptiveAvgPool2D(1)
        self._out = uniform_linear(channels, self.class_num)
        self.finish(lr_groups=groups, stages=[layers[-1] for name, layers in groups.items() if name != "stem"])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._conv1(x)
        for block in self.blocks:
            x = block(x)
        return self._out(paddle.flatten(self._pool(x), start_axis=1))


MIN_INPUT_SIZE = STABLE_BATCHNORM_SIZE  # see there why not 32

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -------------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"DarkNet53": 0.780}, input_size=256)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "DarkNet53": dict(),
}

BUILDERS = builders(DarkNet53, VARIANTS, WEIGHTS)
