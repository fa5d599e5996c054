"""ReXNet (Han et al. 2020, https://arxiv.org/abs/2007.00992): inverted bottlenecks whose
channels grow linearly block by block, weight-compatible with PaddleClas 2.6's
``ReXNet_1_0`` ... ``ReXNet_3_0``."""
from __future__ import annotations

import math
from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, ComponentArgumentError, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._layers import LeanBatchNorm2D, activation

# --- building blocks -----------------------------------------------------------------------


def conv_bn(
    in_channels: int, out_channels: int, kernel_size: int = 1, *, act: str | None = None, **conv: Any
) -> list[nn.Layer]:
    """The layers of a bias-free conv, its BatchNorm and ``act``, to go into a Sequential
    (PaddleClas names ReXNet's parameters by their index there)."""
    layers = [
        nn.Conv2D(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2, bias_attr=False, **conv),
        LeanBatchNorm2D(out_channels),
    ]
    return layers + ([activation(act)] if act else [])


class SqueezeExcite(nn.Layer):
    """Pooled features -> ``fc``: 1x1 conv, BatchNorm, ReLU, 1x1 conv, sigmoid -> gate."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        squeezed = channels // reduction
        self.fc = nn.Sequential(
            nn.Conv2D(channels, squeezed, 1), LeanBatchNorm2D(squeezed), nn.ReLU(),
            nn.Conv2D(squeezed, channels, 1), nn.Sigmoid(),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * self.fc(nn.functional.adaptive_avg_pool2d(x, 1))


class LinearBottleneck(nn.Layer):
    """``out``: 1x1 expansion by ``expand_ratio`` and swish (when above 1), 3x3 depthwise conv,
    squeeze-excitation (``se_reduction`` > 0), ReLU6, linear 1x1 projection. Where the stride
    is 1, the input is added to the first ``in_channels`` output channels."""

    def __init__(self, in_channels: int, out_channels: int, *, expand_ratio: int, stride: int, se_reduction: int) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        layers = conv_bn(in_channels, mid, act="swish") if expand_ratio != 1 else []
        layers += conv_bn(mid, mid, 3, stride=stride, groups=mid)
        if se_reduction:
            layers.append(SqueezeExcite(mid, se_reduction))
        layers += [nn.ReLU6(), *conv_bn(mid, out_channels)]
        self.out = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.shortcut = stride == 1 and in_channels <= out_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.out(x)
        if not self.shortcut:
            return out
        if out.shape[1] == self.in_channels:
            return out + x
        return paddle.concat([out[:, : self.in_channels] + x, out[:, self.in_channels :]], axis=1)


# --- the model -----------------------------------------------------------------------------

#: the six block groups at depth 1.0: (blocks, stride of the first, squeeze-excitation)
GROUPS = ((1, 1, False), (2, 2, False), (2, 2, True), (3, 2, True), (3, 1, True), (5, 2, True))
STEM_CHANNELS = 32


def block_channels(width: float, depth_mult: float, input_ch: int, final_ch: int) -> list[tuple[int, int]]:
    """Each block's (in, out) channels at ``width`` >= 1: the output grows by ``final_ch`` in
    equal steps over the blocks from ``input_ch``, times ``width`` (PaddleClas's arithmetic,
    rounding half to even)."""
    blocks = sum(math.ceil(n * depth_mult) for n, _, _ in GROUPS)
    planes = input_ch
    channels = [(int(round(STEM_CHANNELS * width)), int(round(planes * width)))]
    for _ in range(1, blocks):
        in_channels = int(round(planes * width))
        planes += final_ch / blocks
        channels.append((in_channels, int(round(planes * width))))
    return channels


class ReXNet(Backbone):
    """ReXNet (PaddleClas's ``ReXNetV1``): ``features`` = stride-2 stem conv-BN-swish, 16
    linear bottlenecks (at depth 1.0) widening step by step, 1x1 conv-BN-swish to ``1280 *
    width`` channels, global pooling; ``output`` = dropout and a 1x1 conv classifier.

    ``width`` scales the channels (fixed per name); ``depth_mult`` the blocks per group;
    ``input_ch`` and ``final_ch``: the first block's output channels and how many the blocks
    add in all (at width 1); ``use_se`` and ``se_ratio``: squeeze-excitation in the last four
    groups and its reduction; ``dropout_ratio``: before the classifier.

    ``lr_mult_list`` has 6 values: the stem, then each stage; ``return_stages`` picks stages 0-4,
    the blocks at strides 2, 4, 8, 16 and 32.
    """

    def __init__(
        self,
        *,
        width: float,
        depth_mult: float = 1.0,
        input_ch: int = 16,
        final_ch: int = 180,
        use_se: bool = True,
        se_ratio: int = 12,
        dropout_ratio: float = 0.2,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        if not depth_mult > 0 or input_ch < 1 or final_ch < 0 or se_ratio < 1:
            raise ComponentArgumentError(
                f"{name}: depth_mult must be positive, input_ch and se_ratio at least 1, final_ch non-negative; "
                f"got depth_mult={depth_mult!r}, input_ch={input_ch!r}, final_ch={final_ch!r}, se_ratio={se_ratio!r}"
            )
        channels = block_channels(width, depth_mult, input_ch, final_ch)
        layers = conv_bn(3, channels[0][0], 3, stride=2, act="swish")
        stem = list(layers)
        stages: list[list[nn.Layer]] = []
        block_index = 0
        for g, (count, stride, squeeze) in enumerate(GROUPS):
            if g == 0 or stride > 1:
                stages.append([])
            for b in range(math.ceil(count * depth_mult)):
                in_channels, out_channels = channels[block_index]
                block = LinearBottleneck(
                    in_channels, out_channels, expand_ratio=1 if g == 0 else 6, stride=stride if b == 0 else 1,
                    se_reduction=se_ratio if use_se and squeeze else 0,
                )
                layers.append(block)
                stages[-1].append(block)
                block_index += 1
        features = int(1280 * width)
        layers += conv_bn(channels[-1][1], features, act="swish")
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2D(1))
        self.output = nn.Sequential(nn.Dropout(dropout_ratio), nn.Conv2D(features, self.class_num, 1))
        self.finish(
            lr_groups={"stem": stem, **{f"stage{i}": stage for i, stage in enumerate(stages)}},
            stages=[stage[-1] for stage in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.flatten(self.output(self.features(x)), start_axis=1)


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"ReXNet_1_0": 0.7746, "ReXNet_1_3": 0.7913, "ReXNet_1_5": 0.8006, "ReXNet_2_0": 0.8122, "ReXNet_3_0": 0.8209},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "ReXNet_1_0": dict(width=1.0),
    "ReXNet_1_3": dict(width=1.3),
    "ReXNet_1_5": dict(width=1.5),
    "ReXNet_2_0": dict(width=2.0),
    "ReXNet_3_0": dict(width=3.0),
}

BUILDERS = builders(ReXNet, VARIANTS, WEIGHTS)
