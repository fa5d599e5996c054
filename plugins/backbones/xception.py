"""Xception (Chollet 2016, https://arxiv.org/abs/1610.02357), as PaddleClas 2.6 builds it
(model_zoo/xception.py): weight-compatible with its ``Xception41``, ``Xception65`` and
``Xception71``. Trained at 299x299."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import ZooConvBN

# --- building blocks -----------------------------------------------------------------------


class SeparableConv(nn.Layer):
    """PaddleClas's separable conv, pointwise first: 1x1 conv-BN (``_pointwise_conv``), then
    3x3 depthwise conv-BN (``_depthwise_conv``) with activation ``act``."""

    def __init__(self, in_channels: int, out_channels: int, act: str | None = None) -> None:
        super().__init__()
        self._pointwise_conv = ZooConvBN(in_channels, out_channels, 1)
        self._depthwise_conv = ZooConvBN(out_channels, out_channels, 3, groups=out_channels, act=act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._depthwise_conv(self._pointwise_conv(x))


class DownsamplingBlock(nn.Layer):
    """Residual block of the entry and exit flows: two separable convs (ReLU between) and 3x3
    max pooling at ``stride``, added to a strided 1x1 conv shortcut (``_short``, no BN).
    ``relu_first``: apply ReLU to the input of the separable convs; ``conv_names``: their
    names (the exit flow's block calls them ``_conv_1``, ``_conv_2``)."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        *,
        stride: int,
        relu_first: bool,
        conv_names: tuple[str, str] = ("_conv1", "_conv2"),
    ) -> None:
        super().__init__()
        self.relu_first = relu_first
        self._short = nn.Conv2D(in_channels, out_channels, 1, stride=stride, bias_attr=False)
        first, second = conv_names
        self.convs = [
            self.add_sublayer(first, SeparableConv(in_channels, mid_channels, act="relu")),
            self.add_sublayer(second, SeparableConv(mid_channels, out_channels)),
        ]
        self._pool = nn.MaxPool2D(3, stride=stride, padding=1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = nn.functional.relu(x) if self.relu_first else x
        for conv in self.convs:
            y = conv(y)
        return self._short(x) + self._pool(y)


class MiddleBlock(nn.Layer):
    """ReLU -> separable conv, three times (``_conv_0.._conv_2``), plus the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self._conv_0 = SeparableConv(channels, channels, act="relu")
        self._conv_1 = SeparableConv(channels, channels, act="relu")
        self._conv_2 = SeparableConv(channels, channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self._conv_2(self._conv_1(self._conv_0(nn.functional.relu(x))))


class ExitFlow(nn.Layer):
    """Downsampling block (``_conv_0``), separable convs to 1536 and 2048 channels with ReLU
    (``_conv_1``, ``_conv_2``), global pooling and the classifier ``_out``."""

    def __init__(self, in_channels: int, class_num: int) -> None:
        super().__init__()
        self._conv_0 = DownsamplingBlock(
            in_channels, in_channels, 1024, stride=2, relu_first=True, conv_names=("_conv_1", "_conv_2")
        )
        self._conv_1 = SeparableConv(1024, 1536, act="relu")
        self._conv_2 = SeparableConv(1536, 2048, act="relu")
        self._pool = nn.AdaptiveAvgPool2D(1)
        self._out = uniform_linear(2048, class_num)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._conv_2(self._conv_1(self._conv_0(x)))
        return self._out(paddle.flatten(self._pool(x), start_axis=1))


# --- the model -----------------------------------------------------------------------------

#: entry-flow block count -> per block (out channels, stride); the first takes the stem's 64
ENTRY_FLOWS = {
    3: ((128, 2), (256, 2), (728, 2)),
    5: ((128, 2), (256, 1), (256, 2), (728, 1), (728, 2)),
}


class Xception(Backbone):
    """Xception: ``_entry_flow`` (3x3/2 and 3x3 conv-BN-ReLU ``_conv1``, ``_conv2``, then
    downsampling blocks ``_conv_0..``), ``_middle_flow`` (728-channel residual blocks
    ``_conv_0..``) and ``_exit_flow`` (a downsampling block, two separable convs, pooling and
    the classifier ``_out``).

    Fixed per name: ``entry_blocks`` (3 or 5) and ``middle_blocks`` (8 or 16).
    ``lr_mult_list`` has 5 values: the stem, then the stages at strides 4, 8, 16 (the last
    entry blocks and the middle flow) and 32 (the exit flow); ``return_stages`` picks
    stages 0-3.
    """

    def __init__(self, *, entry_blocks: int, middle_blocks: int, **contract: Any) -> None:
        super().__init__(**contract)
        entry = nn.Sequential(
            ("_conv1", ZooConvBN(3, 32, 3, stride=2, act="relu")), ("_conv2", ZooConvBN(32, 64, 3, act="relu"))
        )
        by_stride: dict[int, list[nn.Layer]] = {4: [], 8: [], 16: []}
        channels, stride = 64, 2
        for i, (out_channels, block_stride) in enumerate(ENTRY_FLOWS[entry_blocks]):
            block = DownsamplingBlock(channels, out_channels, out_channels, stride=block_stride, relu_first=i > 0)
            entry.add_sublayer(f"_conv_{i}", block)
            channels, stride = out_channels, stride * block_stride
            by_stride[stride].append(block)
        self._entry_flow = entry
        self._middle_flow = nn.Sequential(*((f"_conv_{i}", MiddleBlock(channels)) for i in range(middle_blocks)))
        self._exit_flow = ExitFlow(channels, self.class_num)

        exit_flow = [self._exit_flow._conv_0, self._exit_flow._conv_1, self._exit_flow._conv_2]
        groups = {
            "stem": [entry._conv1, entry._conv2],
            "stage0": by_stride[4],
            "stage1": by_stride[8],
            "stage2": by_stride[16] + [self._middle_flow],
            "stage3": exit_flow,
        }
        stages = [by_stride[4][-1], by_stride[8][-1], self._middle_flow, self._exit_flow._conv_2]
        self.finish(lr_groups=groups, stages=stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._exit_flow(self._middle_flow(self._entry_flow(x)))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"Xception41": 0.7930, "Xception65": 0.8100, "Xception71": 0.8111},
    input_size=299,
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "Xception41": dict(entry_blocks=3, middle_blocks=8),
    "Xception65": dict(entry_blocks=3, middle_blocks=16),
    "Xception71": dict(entry_blocks=5, middle_blocks=16),
}

BUILDERS = builders(Xception, VARIANTS, WEIGHTS)
