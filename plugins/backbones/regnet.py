"""RegNetX (Radosavovic et al. 2020, https://arxiv.org/abs/2003.13678): ResNeXt-style
bottlenecks whose widths follow a quantised linear rule, weight-compatible with PaddleClas
2.6's ``RegNetX_200MF`` ... ``RegNetX_32GF`` (PaddleClas registers no RegNetY)."""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import ZooConvBN

STEM_CHANNELS = 32
#: the width every block width is a multiple of
QUANTUM = 8

# --- the width rule ------------------------------------------------------------------------


def stage_widths(w_a: float, w_0: int, w_m: float, depth: int, group_width: int) -> list[tuple[int, int, int]]:
    """Each stage's (blocks, width, group width) by the RegNet rule: block ``i`` would be
    ``w_0 + w_a * i`` wide; that is snapped to ``w_0`` times a whole power of ``w_m`` and
    rounded to a multiple of 8; runs of equal widths make the stages. A stage's group width
    is at most its width, which then becomes a multiple of it."""
    linear = np.arange(depth) * w_a + w_0
    powers = np.round(np.log(linear / w_0) / np.log(w_m))
    widths = (np.round(w_0 * np.power(w_m, powers) / QUANTUM) * QUANTUM).astype(int).tolist()
    stages = []
    for width, run in itertools.groupby(widths):
        groups = min(group_width, width)
        stages.append((len(list(run)), int(round(width / groups) * groups), groups))
    return stages


# --- building blocks -----------------------------------------------------------------------


class Bottleneck(nn.Layer):
    """1x1 conv (``conv0``), grouped 3x3 conv of ``group_width`` channels per group
    (``conv1``, the stride), 1x1 conv (``conv2``), each with BatchNorm, ReLU after the first
    two; added to the input, or to its 1x1 projection (``short``) where ``project``, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, group_width: int, project: bool) -> None:
        super().__init__()
        self.conv0 = ZooConvBN(in_channels, out_channels, 1, act="relu")
        self.conv1 = ZooConvBN(
            out_channels, out_channels, 3, stride=stride, groups=out_channels // group_width, act="relu"
        )
        self.conv2 = ZooConvBN(out_channels, out_channels, 1)
        self.short = ZooConvBN(in_channels, out_channels, 1, stride=stride) if project else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        shortcut = x if self.short is None else self.short(x)
        return nn.functional.relu(shortcut + self.conv2(self.conv1(self.conv0(x))))


# --- the model -----------------------------------------------------------------------------


class RegNet(Backbone):
    """RegNetX: a stride-2 3x3 stem conv (``conv``), stages of bottlenecks (``s<stage>_b<block>``,
    the first of each halving the map and projecting the shortcut), global pooling and the
    classifier ``out``. ``w_a``, ``w_0``, ``w_m``, ``depth`` and ``group_width`` set the widths
    and stages (:func:`stage_widths`).

    ``lr_mult_list`` has 5 values: the stem, then each stage; ``return_stages`` picks stages 0-3,
    at strides 4, 8, 16 and 32.
    """

    def __init__(self, *, w_a: float, w_0: int, w_m: float, depth: int, group_width: int, **contract: Any) -> None:
        super().__init__(**contract)
        self.conv = ZooConvBN(3, STEM_CHANNELS, 3, stride=2, act="relu")
        self.blocks: list[Bottleneck] = []
        stages: list[list[nn.Layer]] = []
        in_channels = STEM_CHANNELS
        for s, (count, width, groups) in enumerate(stage_widths(w_a, w_0, w_m, depth, group_width)):
            stages.append([])
            for b in range(count):
                block = Bottleneck(in_channels, width, stride=2 if b == 0 else 1, group_width=groups, project=b == 0)
                self.blocks.append(self.add_sublayer(f"s{s + 1}_b{b + 1}", block))
                stages[-1].append(block)
                in_channels = width
        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.out = uniform_linear(in_channels, self.class_num)
        self.finish(
            lr_groups={"stem": [self.conv], **{f"stage{i}": stage for i, stage in enumerate(stages)}},
            stages=[stage[-1] for stage in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv(x)
        for block in self.blocks:
            x = block(x)
        return self.out(paddle.flatten(self.pool2d_avg(x), start_axis=1))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its docs, which give only 4GF's) ----

_URL = MODEL_ZOO_URL + "{}_pretrained.pdparams"
WEIGHTS = weights_table(_URL, {"RegNetX_4GF": 0.785}) | weights_table(
    _URL,
    {
        name: None
        for name in (
            "RegNetX_200MF", "RegNetX_400MF", "RegNetX_600MF", "RegNetX_800MF", "RegNetX_1600MF", "RegNetX_3200MF",
            "RegNetX_6400MF", "RegNetX_8GF", "RegNetX_12GF", "RegNetX_16GF", "RegNetX_32GF",
        )
    },
    input_size=256,  # PaddleClas's configs of these evaluate 256x256 crops
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "RegNetX_200MF": dict(w_a=36.44, w_0=24, w_m=2.49, depth=13, group_width=8),
    "RegNetX_400MF": dict(w_a=24.48, w_0=24, w_m=2.54, depth=22, group_width=16),
    "RegNetX_600MF": dict(w_a=36.97, w_0=48, w_m=2.24, depth=16, group_width=24),
    "RegNetX_800MF": dict(w_a=35.73, w_0=56, w_m=2.28, depth=16, group_width=16),
    "RegNetX_1600MF": dict(w_a=34.01, w_0=80, w_m=2.25, depth=18, group_width=24),
    "RegNetX_3200MF": dict(w_a=26.31, w_0=88, w_m=2.25, depth=25, group_width=48),
    "RegNetX_4GF": dict(w_a=38.65, w_0=96, w_m=2.43, depth=23, group_width=40),
    "RegNetX_6400MF": dict(w_a=60.83, w_0=184, w_m=2.07, depth=17, group_width=56),
    "RegNetX_8GF": dict(w_a=49.56, w_0=80, w_m=2.88, depth=23, group_width=120),
    "RegNetX_12GF": dict(w_a=73.36, w_0=168, w_m=2.37, depth=19, group_width=112),
    "RegNetX_16GF": dict(w_a=55.59, w_0=216, w_m=2.1, depth=22, group_width=128),
    "RegNetX_32GF": dict(w_a=69.86, w_0=320, w_m=2.0, depth=23, group_width=168),
}

BUILDERS = builders(RegNet, VARIANTS, WEIGHTS)
