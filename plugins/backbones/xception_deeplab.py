"""The aligned Xception of DeepLabv3+ (Chen et al. 2018, https://arxiv.org/abs/1802.02611),
as PaddleClas 2.6 builds it for classification (model_zoo/xception_deeplab.py):
weight-compatible with its ``Xception41_deeplab`` and ``Xception65_deeplab``. Trained at
299x299."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._layers import LeanBatchNorm2D

# --- building blocks -----------------------------------------------------------------------


def deeplab_norm(channels: int) -> LeanBatchNorm2D:
    """BatchNorm with the TensorFlow DeepLab settings PaddleClas keeps: epsilon 1e-3, momentum 0.99."""
    return LeanBatchNorm2D(channels, momentum=0.99, epsilon=1e-3)


class ConvBN(nn.Layer):
    """Bias-free conv and BN (``_conv``, ``_bn``), then ReLU if ``relu``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, relu: bool = False
    ) -> None:
        super().__init__()
        self._conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias_attr=False
        )
        self._bn = deeplab_norm(out_channels)
        self.relu = relu

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._bn(self._conv(x))
        return nn.functional.relu(x) if self.relu else x


class SeparableConv(nn.Layer):
    """3x3 depthwise conv-BN (``_conv1``, ``_bn1``; ``stride``, ``dilation``), then 1x1
    pointwise conv-BN (``_conv2``, ``_bn2``); with ``relu``, ReLU after each BN."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, dilation: int, relu: bool) -> None:
        super().__init__()
        self._conv1 = nn.Conv2D(
            in_channels, in_channels, 3,
            stride=stride, padding=dilation, dilation=dilation, groups=in_channels, bias_attr=False,
        )
        self._bn1 = deeplab_norm(in_channels)
        self._conv2 = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)
        self._bn2 = deeplab_norm(out_channels)
        self.relu = relu

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._bn1(self._conv1(x))
        if self.relu:
            x = nn.functional.relu(x)
        x = self._bn2(self._conv2(x))
        return nn.functional.relu(x) if self.relu else x


class XceptionBlock(nn.Layer):
    """Three separable convs ``_conv1.._conv3`` (the last at ``stride``) and a shortcut:
    a strided 1x1 conv-BN ``_short`` (``shortcut="conv"``), the input (``"identity"``) or
    none (``None``). ``relu_inside``: ReLU inside each separable conv instead of before it."""

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, int, int],
        *,
        stride: int = 1,
        dilation: int = 1,
        shortcut: str | None = "conv",
        relu_inside: bool = False,
    ) -> None:
        super().__init__()
        self.shortcut = shortcut
        self.relu_inside = relu_inside
        widths = (in_channels, *channels)
        self.convs = [
            self.add_sublayer(
                f"_conv{i + 1}",
                SeparableConv(
                    widths[i], widths[i + 1], stride=stride if i == 2 else 1, dilation=dilation, relu=relu_inside
                ),
            )
            for i in range(3)
        ]
        if shortcut == "conv":
            self._short = ConvBN(in_channels, channels[-1], 1, stride=stride)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = x
        for conv in self.convs:
            y = conv(y if self.relu_inside else nn.functional.relu(y))
        if self.shortcut == "conv":
            return y + self._short(x)
        return y + x if self.shortcut == "identity" else y


# --- the model -----------------------------------------------------------------------------

ENTRY_CHANNELS = (128, 256, 728)
#: depth -> middle-flow blocks
MIDDLE_BLOCKS = {41: 8, 65: 16}


class XceptionDeeplab(Backbone):
    """Aligned Xception: stem conv-BN-ReLUs ``_conv1`` (3x3/2) and ``_conv2``; entry-flow blocks
    ``xception_<depth>/entry_flow/block1..3`` (stride 2 each), middle-flow blocks
    ``xception_<depth>/middle_flow/block1..``, exit-flow blocks ``_exit_flow_1`` (stride 2)
    and ``_exit_flow_2`` (dilation 2, no shortcut); dropout 0.5, pooling, the classifier ``_fc``.

    Fixed per name: ``depth`` (41 or 65: 8 or 16 middle-flow blocks). ``lr_mult_list`` has 5
    values: the stem, then the stages at strides 4, 8, 16 (the last entry block and the
    middle flow) and 32 (the exit flow); ``return_stages`` picks stages 0-3.
    """

    def __init__(self, *, depth: int, **contract: Any) -> None:
        super().__init__(**contract)
        scope = f"xception_{depth}"
        self._conv1 = ConvBN(3, 32, 3, stride=2, relu=True)
        self._conv2 = ConvBN(32, 64, 3, relu=True)
        channels = 64
        self.entry_blocks = []
        for i, width in enumerate(ENTRY_CHANNELS):
            block = XceptionBlock(channels, (width,) * 3, stride=2)
            self.entry_blocks.append(self.add_sublayer(f"{scope}/entry_flow/block{i + 1}", block))
            channels = width
        self.middle_blocks = [
            self.add_sublayer(
                f"{scope}/middle_flow/block{i + 1}", XceptionBlock(channels, (channels,) * 3, shortcut="identity")
            )
            for i in range(MIDDLE_BLOCKS[depth])
        ]
        self._exit_flow_1 = XceptionBlock(channels, (728, 1024, 1024), stride=2)
        self._exit_flow_2 = XceptionBlock(1024, (1536, 1536, 2048), dilation=2, shortcut=None, relu_inside=True)
        self._drop = nn.Dropout(p=0.5, mode="downscale_in_infer")
        self._pool = nn.AdaptiveAvgPool2D(1)
        self._fc = nn.Linear(2048, self.class_num)

        first, second, third = self.entry_blocks
        groups = {
            "stem": [self._conv1, self._conv2],
            "stage0": [first],
            "stage1": [second],
            "stage2": [third, *self.middle_blocks],
            "stage3": [self._exit_flow_1, self._exit_flow_2],
        }
        self.finish(lr_groups=groups, stages=[first, second, self.middle_blocks[-1], self._exit_flow_2])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._conv2(self._conv1(x))
        for block in self.entry_blocks + self.middle_blocks:
            x = block(x)
        x = self._exit_flow_2(self._exit_flow_1(x))
        return self._fc(paddle.flatten(self._pool(self._drop(x)), start_axis=1))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"Xception41_deeplab": 0.7955, "Xception65_deeplab": 0.8032},
    input_size=299,
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "Xception41_deeplab": dict(depth=41),
    "Xception65_deeplab": dict(depth=65),
}

BUILDERS = builders(XceptionDeeplab, VARIANTS, WEIGHTS)
