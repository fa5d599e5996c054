"""MixNet (Tan & Le 2019, https://arxiv.org/abs/1907.09595): inverted bottlenecks whose
depthwise (and some 1x1) convolutions mix several kernel sizes over channel groups,
weight-compatible with PaddleClas 2.6's ``MixNet_S``, ``MixNet_M`` and ``MixNet_L``."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._layers import ConvBN, LeanBatchNorm2D, activation, make_divisible

# --- building blocks -----------------------------------------------------------------------


def split_channels(channels: int, parts: int) -> list[int]:
    """``channels`` in ``parts`` near-equal groups, the first taking the remainder."""
    sizes = [channels // parts] * parts
    sizes[0] += channels - sum(sizes)
    return sizes


class MixConv(nn.LayerList):
    """Mixed convolution: the channels split into one group per kernel size, each group
    convolved with its own kernel (``0``, ``1``, ...; depthwise when ``depthwise``), the
    results concatenated."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int], *, stride: int = 1, depthwise: bool = False
    ) -> None:
        in_splits = split_channels(in_channels, len(kernel_sizes))
        out_splits = split_channels(out_channels, len(kernel_sizes))
        super().__init__(
            nn.Conv2D(
                c_in, c_out, k, stride=stride, padding=(k - 1) // 2, groups=c_out if depthwise else 1, bias_attr=False
            )
            for c_in, c_out, k in zip(in_splits, out_splits, kernel_sizes)
        )
        self.in_splits = in_splits

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        parts = paddle.split(x, self.in_splits, axis=1)
        return paddle.concat([conv(part) for conv, part in zip(self, parts)], axis=1)


class MixConvBN(nn.Layer):
    """:class:`MixConv` (``conv``), BatchNorm (``bn``), then ``act``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int], *, act: str | None, **conv: Any
    ) -> None:
        super().__init__()
        self.conv = MixConv(in_channels, out_channels, kernel_sizes, **conv)
        self.bn = LeanBatchNorm2D(out_channels)
        self.act = activation(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(self.conv(x))
        return x if self.act is None else self.act(x)


def pointwise(in_channels: int, out_channels: int, kernels: int, act: str | None) -> nn.Layer:
    """A 1x1 conv-BN, mixed over ``kernels`` channel groups when more than one."""
    if kernels == 1:
        return ConvBN(in_channels, out_channels, 1, act=act)
    return MixConvBN(in_channels, out_channels, [1] * kernels, act=act)


class SqueezeExcite(nn.Layer):
    """Pooled features -> 1x1 conv (``conv1``) -> ``act`` -> 1x1 conv (``conv2``) -> sigmoid gate."""

    def __init__(self, channels: int, squeezed: int, act: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(channels, squeezed, 1)
        self.act = activation(act)
        self.conv2 = nn.Conv2D(squeezed, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self.conv2(self.act(self.conv1(nn.functional.adaptive_avg_pool2d(x, 1))))
        return x * nn.functional.sigmoid(gate)


class MixUnit(nn.Layer):
    """Inverted bottleneck: expansion by ``exp_factor`` (``exp_conv``, 1x1 mixed over
    ``exp_kernels`` groups), depthwise conv (``conv1``: 3x3, or 3x3, 5x5, ... mixed over
    ``conv1_kernels`` groups), squeeze-excitation reducing ``exp_factor * se_factor`` times
    (``se``), 1x1 projection (``conv2``, mixed over ``conv2_kernels`` groups); the input is
    added back where the shape allows."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        exp_kernels: int,
        conv1_kernels: int,
        conv2_kernels: int,
        exp_factor: int,
        se_factor: int,
        act: str,
    ) -> None:
        super().__init__()
        mid = in_channels * exp_factor
        self.exp_conv = pointwise(in_channels, mid, exp_kernels, act) if exp_factor > 1 else None
        if conv1_kernels == 1:
            self.conv1 = ConvBN(mid, mid, 3, stride=stride, groups=mid, act=act)
        else:
            kernels = [3 + 2 * i for i in range(conv1_kernels)]
            self.conv1 = MixConvBN(mid, mid, kernels, stride=stride, depthwise=True, act=act)
        self.se = SqueezeExcite(mid, mid // (exp_factor * se_factor), act) if se_factor else None
        self.conv2 = pointwise(mid, out_channels, conv2_kernels, None)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        x = inputs if self.exp_conv is None else self.exp_conv(inputs)
        x = self.conv1(x)
        if self.se is not None:
            x = self.se(x)
        x = self.conv2(x)
        return x + inputs if self.residual else x


class InitBlock(nn.Layer):
    """3x3 stride-2 conv-BN-ReLU (``conv1``), then a plain residual unit (``conv2``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(3, channels, 3, stride=2, act="relu")
        self.conv2 = MixUnit(
            channels, channels, stride=1, exp_kernels=1, conv1_kernels=1, conv2_kernels=1, exp_factor=1, se_factor=0,
            act="relu",
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv2(self.conv1(x))


# --- the model -----------------------------------------------------------------------------

#: per stage, each unit as (out channels, exp kernels, conv1 kernels, conv2 kernels, exp factor, SE factor)
UNITS_S = (
    ((24, 2, 1, 2, 6, 0), (24, 2, 1, 2, 3, 0)),
    ((40, 1, 3, 1, 6, 2), (40, 2, 2, 2, 6, 2), (40, 2, 2, 2, 6, 2), (40, 2, 2, 2, 6, 2)),
    ((80, 1, 3, 2, 6, 4), (80, 1, 2, 2, 6, 4), (80, 1, 2, 2, 6, 4)),
    ((120, 2, 3, 2, 6, 2), (120, 2, 4, 2, 3, 2), (120, 2, 4, 2, 3, 2),
     (200, 1, 5, 1, 6, 2), (200, 1, 4, 2, 6, 2), (200, 1, 4, 2, 6, 2)),
)
UNITS_M = (
    ((32, 2, 3, 2, 6, 0), (32, 2, 1, 2, 3, 0)),
    ((40, 1, 4, 1, 6, 2), (40, 2, 2, 2, 6, 2), (40, 2, 2, 2, 6, 2), (40, 2, 2, 2, 6, 2)),
    ((80, 1, 3, 1, 6, 4), (80, 2, 4, 2, 6, 4), (80, 2, 4, 2, 6, 4), (80, 2, 4, 2, 6, 4)),
    ((120, 1, 1, 1, 6, 2), (120, 2, 4, 2, 3, 2), (120, 2, 4, 2, 3, 2), (120, 2, 4, 2, 3, 2),
     (200, 1, 4, 1, 6, 2), (200, 1, 4, 2, 6, 2), (200, 1, 4, 2, 6, 2), (200, 1, 4, 2, 6, 2)),
)
FINAL_CHANNELS = 1536


class MixNet(Backbone):
    """MixNet: ``features`` = an initial block (``init_block``: stride-2 conv and a residual
    unit), four stages of mixed-kernel units (``stage1`` .. ``stage4``; ReLU in the first,
    swish after), a 1x1 conv to 1536 channels (``final_block``) and global average pooling
    (PaddleClas's 7x7 pooling, which needs 224x224 input, at that size); then the
    classifier ``output``.

    Each stage halves the map at its first unit, but the last at its middle unit; so
    ``return_stages`` picks stages 0-4 at strides 2, 4, 8, 16 and 32: ``init_block``,
    ``stage1``, ``stage2``, ``stage4``'s units before the middle one, ``stage4``.
    ``lr_mult_list`` has 6 values: the stem conv (``init_block.conv1``), then each of those stages.
    """

    def __init__(
        self, *, units: Sequence[Sequence[tuple[int, ...]]], init_channels: int, width: float, **contract: Any
    ) -> None:
        super().__init__(**contract)
        channels = make_divisible(init_channels * width)
        init_block = InitBlock(channels)
        layers: list[tuple[str, nn.Layer]] = [("init_block", init_block)]
        groups: list[list[nn.Layer]] = [[init_block.conv2]]
        for s, stage_units in enumerate(units):
            halving = len(stage_units) // 2 if s == len(units) - 1 else 0
            stage = nn.Sequential()
            for u, (out_channels, exp_kernels, conv1_kernels, conv2_kernels, exp_factor, se_factor) in enumerate(
                stage_units
            ):
                out_channels = make_divisible(out_channels * width)
                unit = MixUnit(
                    channels, out_channels, stride=2 if u == halving else 1, exp_kernels=exp_kernels,
                    conv1_kernels=conv1_kernels, conv2_kernels=conv2_kernels, exp_factor=exp_factor,
                    se_factor=se_factor, act="relu" if s == 0 else "swish",
                )
                stage.add_sublayer(f"unit{u + 1}", unit)
                if u == halving:
                    groups.append([])
                groups[-1].append(unit)
                channels = out_channels
            layers.append((f"stage{s + 1}", stage))
        layers.append(("final_block", ConvBN(channels, FINAL_CHANNELS, 1, act="relu")))
        self.features = nn.Sequential(*layers)
        self.output = nn.Linear(FINAL_CHANNELS, self.class_num)
        self.finish(
            lr_groups={"stem": [init_block.conv1], **{f"stage{i}": group for i, group in enumerate(groups)}},
            stages=[group[-1] for group in groups],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.output(paddle.flatten(x, start_axis=1))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams", {"MixNet_S": 0.7628, "MixNet_M": 0.7767, "MixNet_L": 0.7860}
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "MixNet_S": dict(units=UNITS_S, init_channels=16, width=1.0),
    "MixNet_M": dict(units=UNITS_M, init_channels=24, width=1.0),
    "MixNet_L": dict(units=UNITS_M, init_channels=24, width=1.3),
}

#: the size PaddleClas's MixNet needs (its 7x7 pooling), which the parity tests use
MIN_INPUT_SIZE = 224

BUILDERS = builders(MixNet, VARIANTS, WEIGHTS)
