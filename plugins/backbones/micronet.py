"""MicroNet (Li et al. 2021, https://arxiv.org/abs/2108.05894): micro-factorised convolutions
and the dynamic Shift-Max activation for networks of a few MFLOPs; weight-compatible with
PaddleClas 2.6's ``MicroNet_M0`` ... ``MicroNet_M3`` (model_zoo/micronet.py)."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, split_stages
from corolla.plugins.backbones._init import init_convs_fan_out
from corolla.plugins.backbones._layers import LeanBatchNorm2D, channel_shuffle, make_divisible

#: Dynamic Shift-Max settings every variant shares: the coefficients span
#: ``[-ACT_MAX, ACT_MAX]`` around their initial values; the squeeze reduction
REDUCTION = 8
ACT_MAX = 2.0

# --- building blocks -----------------------------------------------------------------------


class ChannelShuffle(nn.Layer):
    """Channel shuffle of ``groups`` groups, as a layer."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return channel_shuffle(x, self.groups)


class FactorizedConv(nn.Layer):
    """A k x 1 conv (vertical stride) and a 1 x k depthwise conv (horizontal stride), each
    followed by BN, in ``conv``; the first conv is depthwise (``depthwise_first``) or full,
    and ``shuffle`` appends a channel shuffle of that many groups."""

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, *, kernel_size: int, stride: int,
        depthwise_first: bool, shuffle: int | None = None,
    ) -> None:
        super().__init__()
        k, pad = kernel_size, kernel_size // 2
        layers: list[nn.Layer] = [
            nn.Conv2D(in_channels, mid_channels, (k, 1), (stride, 1), (pad, 0), groups=in_channels if depthwise_first else 1, bias_attr=False),
            LeanBatchNorm2D(mid_channels),
            nn.Conv2D(mid_channels, out_channels, (1, k), (1, stride), (0, pad), groups=mid_channels, bias_attr=False),
            LeanBatchNorm2D(out_channels),
        ]
        if shuffle:
            layers.append(ChannelShuffle(shuffle))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv(x)


class GroupConv(nn.Layer):
    """A grouped 1x1 conv and BN, in ``conv``."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2D(in_channels, out_channels, 1, groups=groups, bias_attr=False), LeanBatchNorm2D(out_channels))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv(x)


class DynamicShiftMax(nn.Layer):
    """Dynamic Shift-Max: each channel mixes with its neighbour in the next group,
    ``a * x + b * shifted(x)``, with coefficients predicted per image from pooled features
    (``fc``) around ``init_a``/``init_b``; with ``two_branches`` the maximum of two such
    mixes, otherwise one.

    ``groups``: the shift moves every channel to the next of ``groups`` groups and one place
    along within it (with ``expansion``, ``channels // groups`` groups instead).
    """

    def __init__(
        self, channels: int, *, reduction: int, two_branches: bool, init_a: tuple[float, float],
        init_b: tuple[float, float], groups: int, expansion: bool = False,
    ) -> None:
        super().__init__()
        self.branches = 4 if two_branches else 2
        self.init_a, self.init_b = init_a, init_b
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        squeeze = max(4, make_divisible(channels // reduction, 4))
        self.fc = nn.Sequential(
            nn.Linear(channels, squeeze), nn.ReLU(), nn.Linear(squeeze, channels * self.branches), nn.Hardsigmoid()
        )
        if groups != 1 and expansion:
            groups = channels // groups
        order = np.roll(np.roll(np.arange(channels).reshape(groups, -1), -1, axis=0), -1, axis=1).reshape(-1)
        self.register_buffer("index", paddle.to_tensor(order, dtype="int64"), persistable=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        batch, channels = x.shape[:2]
        coefficients = self.fc(self.avg_pool(x).reshape([batch, channels]))
        coefficients = ((coefficients - 0.5) * (2 * ACT_MAX)).reshape([batch, -1, 1, 1])
        shifted = paddle.index_select(x, self.index, axis=1)
        if self.branches == 2:
            a1, b1 = paddle.split(coefficients, 2, axis=1)
            return x * (a1 + self.init_a[0]) + shifted * (b1 + self.init_b[0])
        a1, b1, a2, b2 = paddle.split(coefficients, 4, axis=1)
        return paddle.maximum(
            x * (a1 + self.init_a[0]) + shifted * (b1 + self.init_b[0]),
            x * (a2 + self.init_a[1]) + shifted * (b2 + self.init_b[1]),
        )


class BlockSpec(NamedTuple):
    """One micro-block: ``expand`` the two factors of the depthwise expansion, ``groups``
    those of the first grouped 1x1 conv (0 first: the block starts depthwise),
    ``out_groups`` those of the projecting 1x1 conv ((0, 0): none), ``dynamic`` where
    Dynamic Shift-Max replaces ReLU6 (after the 1x1 expansion, after the depthwise conv,
    after the projection; 2 means two branches), ``ratio`` scales the squeeze reduction."""

    stride: int
    out: int
    kernel: int
    expand: tuple[int, int]
    groups: tuple[int, int]
    out_groups: tuple[int, int]
    dynamic: tuple[int, int, int]
    ratio: int


class MicroBlock(nn.Layer):
    """A micro-block as one ``layers`` sequence (its layout is PaddleClas's, including the
    parameter-free places, so that parameter names match): micro-factorised convs, each
    followed by Dynamic Shift-Max (or ReLU6) and channel shuffles; the input is added back
    where the shape allows. Three layouts: depthwise first (``groups[0] == 0``), pointwise
    only (no ``out_groups``), or pointwise-depthwise-pointwise."""

    def __init__(self, in_channels: int, spec: BlockSpec, *, init_a: tuple[float, float], init_b: tuple[float, float]) -> None:
        super().__init__()
        out = spec.out
        hidden = in_channels * spec.expand[0] * spec.expand[1]
        reduction = REDUCTION * spec.ratio
        dy1, dy2, dy3 = spec.dynamic
        self.identity = spec.stride == 1 and in_channels == out

        def shift_max(channels: int, level: int, groups: int, reduction: int, expansion: bool = False) -> nn.Layer:
            """Dynamic Shift-Max with the variant's initial coefficients, or ReLU6 (level 0)."""
            if not level:
                return nn.ReLU6()
            return DynamicShiftMax(
                channels, reduction=reduction, two_branches=level == 2, init_a=init_a, init_b=init_b,
                groups=groups, expansion=expansion,
            )

        def projection_shift_max(channels: int, groups: int, reduction: int) -> nn.Layer:
            """The one-branch Dynamic Shift-Max after a projection (identity mix at start)."""
            if not dy3:
                return nn.Identity()
            return DynamicShiftMax(
                channels, reduction=reduction, two_branches=False, init_a=(1.0, 0.0), init_b=(0.0, 0.0), groups=groups
            )

        def shuffle(groups: int, when: bool = True) -> nn.Layer:
            return ChannelShuffle(groups) if when else nn.Identity()

        if spec.groups[0] == 0:
            g1, g2 = spec.out_groups
            layers = [
                FactorizedConv(in_channels, in_channels * spec.expand[0], hidden, kernel_size=spec.kernel, stride=spec.stride, depthwise_first=True),
                shift_max(hidden, dy2, spec.groups[1], reduction),
                shuffle(spec.groups[1]),
                shuffle(hidden // 2, dy2 != 0),
                GroupConv(hidden, out, g1),
                projection_shift_max(out, g2, reduction // 2),
                shuffle(g2),
                shuffle(out // 2, out % 2 == 0 and dy3 != 0),
            ]
        elif spec.out_groups[1] == 0:
            layers = [GroupConv(in_channels, hidden, spec.groups[0]), projection_shift_max(hidden, spec.groups[1], reduction)]
        else:
            g1, g2 = spec.out_groups
            if dy1 and dy2:
                mid_shuffle = shuffle(hidden // 4)
            else:
                mid_shuffle = shuffle(hidden // 2, bool(dy1 or dy2))
            layers = [
                GroupConv(in_channels, hidden, spec.groups[0]),
                shift_max(hidden, dy1, spec.groups[1], reduction),
                shuffle(spec.groups[1]),
                FactorizedConv(hidden, hidden, hidden, kernel_size=spec.kernel, stride=spec.stride, depthwise_first=True),
                nn.Identity(),
                shift_max(hidden, dy2, spec.groups[1], reduction, expansion=True),
                mid_shuffle,
                GroupConv(hidden, out, g1),
                projection_shift_max(out, g2, reduction // 2 if out < hidden else reduction),
                shuffle(g2),
                shuffle(out // 2, dy3 != 0),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.layers(x)
        return x + y if self.identity else y


class StemLayer(nn.Layer):
    """A micro-factorised 3x3 conv at stride 2 to ``groups[0] * groups[1]`` channels, shuffled,
    then ReLU6; in ``stem``."""

    def __init__(self, groups: tuple[int, int]) -> None:
        super().__init__()
        g1, g2 = groups
        self.stem = nn.Sequential(
            FactorizedConv(3, g1, g1 * g2, kernel_size=3, stride=2, depthwise_first=False, shuffle=g1), nn.ReLU6()
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.stem(x)


class SwishLinear(nn.Layer):
    """Linear -> BatchNorm1D -> hard-swish, in ``linear``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Sequential(nn.Linear(in_features, out_features), nn.BatchNorm1D(out_features), nn.Hardswish())

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.linear(x)


# --- the model -----------------------------------------------------------------------------


class MicroNet(Backbone):
    """MicroNet: ``features`` (a micro-factorised stem at stride 2, then the micro-blocks),
    ReLU6, global pooling and hard-swish, and the ``classifier``: Linear-BN-hard-swish to
    ``out_channels``, dropout, Linear-BN-hard-swish to the classes (so the logits are
    hard-swished, as in PaddleClas). ``arch`` names the block table (:data:`ARCHS`).

    The blocks form 4 stages, each ending before the map halves; ``lr_mult_list`` has 5
    values (the stem, then each stage; the classifier keeps the base rate),
    ``return_stages`` picks stages 0-3.
    """

    def __init__(
        self,
        *,
        arch: str,
        stem_groups: tuple[int, int],
        out_channels: int,
        dropout_prob: float,
        init_a: tuple[float, float],
        init_b: tuple[float, float],
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        blocks = ARCHS[arch]
        stem = StemLayer(stem_groups)
        layers = []
        in_channels = stem_groups[0] * stem_groups[1]
        for spec in blocks:
            layers.append(MicroBlock(in_channels, spec, init_a=init_a, init_b=init_b))
            in_channels = spec.out
        self.features = nn.Sequential(stem, *layers)
        self.avgpool = nn.Sequential(nn.ReLU6(), nn.AdaptiveAvgPool2D(1), nn.Hardswish())
        self.classifier = nn.Sequential(
            SwishLinear(in_channels, out_channels), nn.Dropout(dropout_prob), SwishLinear(out_channels, self.class_num)
        )
        init_convs_fan_out(self, per_group=False, zero_bias=False, linear_std=0.01)

        ends = [i - 1 for i, spec in enumerate(blocks) if i > 0 and spec.stride == 2] + [len(blocks) - 1]
        stages = split_stages(layers, ends)
        self.finish(
            lr_groups={"stem": [stem], **{f"stage{i}": stage for i, stage in enumerate(stages)}},
            stages=[stage[-1] for stage in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


# --- the variants' blocks (PaddleClas's msnx_* tables) -------------------------------------------


def _blocks(*rows: tuple) -> tuple[BlockSpec, ...]:
    return tuple(BlockSpec(*row) for row in rows)


M0 = _blocks(
    (2, 8, 3, (2, 2), (0, 4), (2, 2), (2, 0, 1), 1),
    (2, 12, 3, (2, 2), (0, 8), (4, 4), (2, 2, 1), 1),
    (2, 16, 5, (2, 2), (0, 12), (4, 4), (2, 2, 1), 1),
    (1, 32, 5, (1, 4), (4, 4), (4, 4), (2, 2, 1), 1),
    (2, 64, 5, (1, 4), (8, 8), (8, 8), (2, 2, 1), 1),
    (1, 96, 3, (1, 4), (8, 8), (8, 8), (2, 2, 1), 2),
    (1, 384, 3, (1, 4), (12, 12), (0, 0), (2, 2, 1), 2),
)
M1 = _blocks(
    (2, 8, 3, (2, 2), (0, 6), (2, 2), (2, 0, 1), 1),
    (2, 16, 3, (2, 2), (0, 8), (4, 4), (2, 2, 1), 1),
    (2, 16, 5, (2, 2), (0, 16), (4, 4), (2, 2, 1), 1),
    (1, 32, 5, (1, 6), (4, 4), (4, 4), (2, 2, 1), 1),
    (2, 64, 5, (1, 6), (8, 8), (8, 8), (2, 2, 1), 1),
    (1, 96, 3, (1, 6), (8, 8), (8, 8), (2, 2, 1), 2),
    (1, 576, 3, (1, 6), (12, 12), (0, 0), (2, 2, 1), 2),
)
M2 = _blocks(
    (2, 12, 3, (2, 2), (0, 8), (4, 4), (2, 0, 1), 1),
    (2, 16, 3, (2, 2), (0, 12), (4, 4), (2, 2, 1), 1),
    (1, 24, 3, (2, 2), (0, 16), (4, 4), (2, 2, 1), 1),
    (2, 32, 5, (1, 6), (6, 6), (4, 4), (2, 2, 1), 1),
    (1, 32, 5, (1, 6), (8, 8), (4, 4), (2, 2, 1), 2),
    (1, 64, 5, (1, 6), (8, 8), (8, 8), (2, 2, 1), 2),
    (2, 96, 5, (1, 6), (8, 8), (8, 8), (2, 2, 1), 2),
    (1, 128, 3, (1, 6), (12, 12), (8, 8), (2, 2, 1), 2),
    (1, 768, 3, (1, 6), (16, 16), (0, 0), (2, 2, 1), 2),
)
M3 = _blocks(
    (2, 16, 3, (2, 2), (0, 12), (4, 4), (0, 2, 0), 1),
    (2, 24, 3, (2, 2), (0, 16), (4, 4), (0, 2, 0), 1),
    (1, 24, 3, (2, 2), (0, 24), (4, 4), (0, 2, 0), 1),
    (2, 32, 5, (1, 6), (6, 6), (4, 4), (0, 2, 0), 1),
    (1, 32, 5, (1, 6), (8, 8), (4, 4), (0, 2, 0), 2),
    (1, 64, 5, (1, 6), (8, 8), (8, 8), (0, 2, 0), 2),
    (1, 80, 5, (1, 6), (8, 8), (8, 8), (0, 2, 0), 2),
    (1, 80, 5, (1, 6), (10, 10), (8, 8), (0, 2, 0), 2),
    (2, 120, 5, (1, 6), (10, 10), (10, 10), (0, 2, 0), 2),
    (1, 120, 5, (1, 6), (12, 12), (10, 10), (0, 2, 0), 2),
    (1, 144, 3, (1, 6), (12, 12), (12, 12), (0, 2, 0), 2),
    (1, 864, 3, (1, 6), (12, 12), (0, 0), (0, 2, 0), 2),
)

#: the block tables by variant
ARCHS: dict[str, tuple[BlockSpec, ...]] = {"M0": M0, "M1": M1, "M2": M2, "M3": M3}

# --- pretrained weights (PaddleClas 2.6 model zoo; no top-1 in its docs) -----------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams", {"MicroNet_M0": None, "MicroNet_M1": None, "MicroNet_M2": None, "MicroNet_M3": None}
)

# --- registered names ---------------------------------------------------------------------------

_SHIFT_MAX = dict(init_a=(1.0, 1.0), init_b=(0.0, 0.0))
VARIANTS = {
    "MicroNet_M0": dict(arch="M0", stem_groups=(2, 2), out_channels=640, dropout_prob=0.05, **_SHIFT_MAX),
    "MicroNet_M1": dict(arch="M1", stem_groups=(3, 2), out_channels=960, dropout_prob=0.05, **_SHIFT_MAX),
    "MicroNet_M2": dict(arch="M2", stem_groups=(4, 2), out_channels=1024, dropout_prob=0.1, **_SHIFT_MAX),
    "MicroNet_M3": dict(arch="M3", stem_groups=(4, 3), out_channels=1024, dropout_prob=0.1, init_a=(1.0, 0.5), init_b=(0.0, 0.5)),
}

BUILDERS = builders(MicroNet, VARIANTS, WEIGHTS)
