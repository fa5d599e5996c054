"""EfficientNetV2 (Tan & Le 2021, https://arxiv.org/abs/2104.00298), weight-compatible with
PaddleClas 2.6's ``EfficientNetV2_S``: fused inverted bottlenecks (one full conv in place of
expansion and depthwise conv) in the early stages, squeeze-excited ones after.

PaddleClas's ``model_zoo/efficientnet_v2.py`` also defines M, L and XL builders, but its
backbone package exports (and its configs can build) only ``EfficientNetV2_S``; so does corolla.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import paddle
from paddle import nn
from paddle.regularizer import L2Decay

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._efficientnet import PaddedConv, check_padding_type, drop_connect
from corolla.plugins.backbones._layers import LeanBatchNorm2D
from corolla.plugins.backbones._regularize import exempt_norms_from_decay

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3
HEAD_CHANNELS = 1280
#: the residual branches' drop rate rises linearly over the blocks, from 0 to this
DROP_CONNECT_RATE = 0.2

# --- building blocks -----------------------------------------------------------------------


def _norm(channels: int) -> LeanBatchNorm2D:
    return LeanBatchNorm2D(channels, momentum=BN_MOMENTUM, epsilon=BN_EPSILON)


class SqueezeExcite(nn.Layer):
    """Channel means -> 1x1 conv (``_se_reduce``) -> SiLU -> 1x1 conv (``_se_expand``) -> sigmoid gate."""

    def __init__(self, channels: int, squeezed: int, **conv: Any) -> None:
        super().__init__()
        self._se_reduce = PaddedConv(channels, squeezed, 1, bias=True, **conv)
        self._se_expand = PaddedConv(squeezed, channels, 1, bias=True, **conv)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self._se_reduce(paddle.mean(x, axis=[2, 3], keepdim=True))
        return x * nn.functional.sigmoid(self._se_expand(nn.functional.silu(gate)))


class Residual(nn.Layer):
    """A block whose input is added back, after drop-connect at ``drop_rate``, where the shape allows."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_rate = drop_rate

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        x = self.branch(inputs)
        return drop_connect(x, self.drop_rate, self.training) + inputs if self.residual else x


class MBConvBlock(Residual):
    """Inverted bottleneck: 1x1 expansion (``_expand_conv``/``_norm0``) and SiLU, depthwise
    conv (``_depthwise_conv``/``_norm1``) and SiLU, squeeze-excitation (``_se``), 1x1
    projection (``_project_conv``/``_norm2``)."""

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int, expand_ratio: int,
        se_ratio: float, drop_rate: float, **conv: Any,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, drop_rate)
        mid = in_channels * expand_ratio
        self._expand_conv = PaddedConv(in_channels, mid, 1, **conv)
        self._norm0 = _norm(mid)
        self._depthwise_conv = PaddedConv(mid, mid, kernel_size, stride=stride, groups=mid, **conv)
        self._norm1 = _norm(mid)
        self._se = SqueezeExcite(mid, max(1, int(in_channels * se_ratio)), **conv)
        self._project_conv = PaddedConv(mid, out_channels, 1, **conv)
        self._norm2 = _norm(out_channels)

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        x = nn.functional.silu(self._norm0(self._expand_conv(x)))
        x = nn.functional.silu(self._norm1(self._depthwise_conv(x)))
        return self._norm2(self._project_conv(self._se(x)))


class FusedMBConvBlock(Residual):
    """Fused inverted bottleneck: a full ``kernel_size`` conv expanding the channels
    (``_expand_conv``/``_norm0``) and SiLU, then a 1x1 projection (``_project_conv``/``_norm1``);
    at expansion 1, the full conv alone (``_project_conv``/``_norm1``) and SiLU."""

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int, expand_ratio: int,
        drop_rate: float, **conv: Any,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, drop_rate)
        mid = in_channels * expand_ratio
        self.expands = expand_ratio != 1
        if self.expands:
            self._expand_conv = PaddedConv(in_channels, mid, kernel_size, stride=stride, **conv)
            self._norm0 = _norm(mid)
            self._project_conv = PaddedConv(mid, out_channels, 1, **conv)
        else:
            self._project_conv = PaddedConv(in_channels, out_channels, kernel_size, stride=stride, **conv)
        self._norm1 = _norm(out_channels)

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.expands:
            x = nn.functional.silu(self._norm0(self._expand_conv(x)))
            return self._norm1(self._project_conv(x))
        return nn.functional.silu(self._norm1(self._project_conv(x)))


class Stem(nn.Layer):
    """3x3 stride-2 conv (``_conv_stem``), BatchNorm (``_norm``), swish (SiLU; Paddle's swish
    kernel, as PaddleClas, rounds differently from its silu, and the stem's error grows over
    40 blocks)."""

    def __init__(self, out_channels: int, **conv: Any) -> None:
        super().__init__()
        self._conv_stem = PaddedConv(3, out_channels, 3, stride=2, **conv)
        self._norm = _norm(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.swish(self._norm(self._conv_stem(x)))


class Head(nn.Layer):
    """1x1 conv (``_conv_head``), BatchNorm (``_norm``), swish, global pooling, dropout: the features."""

    def __init__(self, in_channels: int, out_channels: int, dropout_rate: float) -> None:
        super().__init__()
        self._conv_head = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)
        self._norm = _norm(out_channels)
        self._avg_pooling = nn.AdaptiveAvgPool2D(1)
        self._dropout = nn.Dropout(dropout_rate) if dropout_rate else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._avg_pooling(nn.functional.swish(self._norm(self._conv_head(x))))
        if self._dropout is not None:
            x = self._dropout(x)
        return paddle.flatten(x, start_axis=1)


# --- the model -----------------------------------------------------------------------------

#: EfficientNetV2-S's block groups as (repeats, kernel, stride, expand ratio, out channels,
#: SE ratio or None for a fused group); the stem gives the first group 24 channels
V2_S_BLOCKS = (
    (2, 3, 1, 1, 24, None),
    (4, 3, 2, 4, 48, None),
    (4, 3, 2, 4, 64, None),
    (6, 3, 2, 4, 128, 0.25),
    (9, 3, 1, 6, 160, 0.25),
    (15, 3, 2, 6, 256, 0.25),
)


class EfficientNetV2(Backbone):
    """EfficientNetV2: a stride-2 stem (``_stem``), the blocks (``_blocks``: fused ones first,
    then squeeze-excited inverted bottlenecks), a 1x1 head conv with pooling and dropout
    (``_head``), and the classifier ``_fc``.

    ``padding_type``: "SAME" (TensorFlow's, worked out for ``resolution`` pixels, as in
    PaddleClas) or "DYNAMIC" (symmetric). In training each residual block drops its branch at a
    rate rising linearly from 0 to 0.2 over the blocks. BatchNorm and the classifier's bias
    are exempt from weight decay.

    ``lr_mult_list`` has 6 values: the stem, then each stage; ``return_stages`` picks stages 0-4,
    the blocks at strides 2, 4, 8, 16 and 32.
    """

    def __init__(
        self,
        *,
        blocks: Sequence[tuple[int, int, int, int, int, float | None]],
        stem_channels: int,
        resolution: int,
        dropout_rate: float,
        padding_type: str = "SAME",
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        check_padding_type(name, padding_type)
        size = resolution
        self._stem = Stem(stem_channels, padding_type=padding_type, size=size)
        size = math.ceil(size / 2)
        total = sum(group[0] for group in blocks)
        self._blocks = nn.LayerList()
        stages: list[list[nn.Layer]] = []
        in_channels = stem_channels
        for g, (repeats, kernel, stride, expand, out_channels, se_ratio) in enumerate(blocks):
            if g == 0 or stride > 1:
                stages.append([])
            for r in range(repeats):
                options = dict(
                    kernel_size=kernel, stride=stride if r == 0 else 1, expand_ratio=expand,
                    drop_rate=DROP_CONNECT_RATE * len(self._blocks) / total, padding_type=padding_type, size=size,
                )
                if se_ratio is None:
                    block = FusedMBConvBlock(in_channels, out_channels, **options)
                else:
                    block = MBConvBlock(in_channels, out_channels, se_ratio=se_ratio, **options)
                self._blocks.append(block)
                stages[-1].append(block)
                in_channels = out_channels
            size = math.ceil(size / stride)
        self._head = Head(in_channels, HEAD_CHANNELS, dropout_rate)
        self._fc = nn.Linear(HEAD_CHANNELS, self.class_num)

        self._init_weights()
        exempt_norms_from_decay(self)
        self._fc.bias.regularizer = L2Decay(0.0)
        self.finish(
            lr_groups={"stem": [self._stem], **{f"stage{i}": stage for i, stage in enumerate(stages)}},
            stages=[stage[-1] for stage in stages],
        )

    def _init_weights(self) -> None:
        """As PaddleClas: convolutions normal with std sqrt(2 / fan-out) (a depthwise conv's
        fan-out is its kernel area), linear weights uniform in +-1/sqrt(out features), biases zero."""
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv2D):
                out_channels, in_channels, height, width = layer.weight.shape
                fan_out = height * width * (1 if in_channels == 1 else out_channels)
                nn.initializer.Normal(std=math.sqrt(2.0 / fan_out))(layer.weight)
            elif isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.weight.shape[1])
                nn.initializer.Uniform(-bound, bound)(layer.weight)
                nn.initializer.Constant(0.0)(layer.bias)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._stem(x)
        for block in self._blocks:
            x = block(x)
        return self._fc(self._head(x))


# --- pretrained weights (PaddleClas 2.6 model zoo; no top-1 in its docs) -----------------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"EfficientNetV2_S": None}, input_size=384)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    # PaddleClas lists four dropout rates for S and uses the first
    "EfficientNetV2_S": dict(blocks=V2_S_BLOCKS, stem_channels=24, resolution=384, dropout_rate=0.1),
}

BUILDERS = builders(EfficientNetV2, VARIANTS, WEIGHTS)
