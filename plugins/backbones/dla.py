"""DLA, Deep Layer Aggregation (Yu et al. 2017, https://arxiv.org/abs/1707.06484): residual
blocks arranged in trees whose root nodes merge the outputs of several depths, and of the
previous stage, by a 1x1 convolution. Weight-compatible with PaddleClas 2.6's ``DLA*``."""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import init_convs_fan_out
from corolla.plugins.backbones._layers import LeanBatchNorm2D

# --- building blocks -----------------------------------------------------------------------


class BasicBlock(nn.Layer):
    """Two 3x3 convs with BatchNorm (the first carries the stride), plus a residual the tree
    passes in (default: the input). DLA34's block."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(in_channels, out_channels, 3, stride=stride, padding=1, bias_attr=False)
        self.bn1 = LeanBatchNorm2D(out_channels)
        self.conv2 = nn.Conv2D(out_channels, out_channels, 3, padding=1, bias_attr=False)
        self.bn2 = LeanBatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor, residual: paddle.Tensor | None = None) -> paddle.Tensor:
        y = self.bn2(self.conv2(nn.functional.relu(self.bn1(self.conv1(x)))))
        return nn.functional.relu(y + (x if residual is None else residual))


class Bottleneck(nn.Layer):
    """1x1 -> 3x3 (carries the stride; ``cardinality`` groups) -> 1x1 convs with BatchNorm,
    plus a residual the tree passes in (default: the input). The inner width is half of
    ``out_channels * base_width / 64 * cardinality``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, *, cardinality: int, base_width: int) -> None:
        super().__init__()
        inner = int(math.floor(out_channels * base_width / 64) * cardinality) // 2
        self.conv1 = nn.Conv2D(in_channels, inner, 1, bias_attr=False)
        self.bn1 = LeanBatchNorm2D(inner)
        self.conv2 = nn.Conv2D(inner, inner, 3, stride=stride, padding=1, groups=cardinality, bias_attr=False)
        self.bn2 = LeanBatchNorm2D(inner)
        self.conv3 = nn.Conv2D(inner, out_channels, 1, bias_attr=False)
        self.bn3 = LeanBatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor, residual: paddle.Tensor | None = None) -> paddle.Tensor:
        y = nn.functional.relu(self.bn1(self.conv1(x)))
        y = nn.functional.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return nn.functional.relu(y + (x if residual is None else residual))


class Root(nn.Layer):
    """The aggregation node: 1x1 conv and BatchNorm over its inputs concatenated, plus the
    first input with ``residual``, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, residual: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)
        self.bn = LeanBatchNorm2D(out_channels)
        self.residual = residual

    def forward(self, *inputs: paddle.Tensor) -> paddle.Tensor:
        y = self.bn(self.conv(paddle.concat(inputs, axis=1)))
        if self.residual:
            y = y + inputs[0]
        return nn.functional.relu(y)


class Tree(nn.Layer):
    """A tree of ``2**levels`` blocks: ``tree1`` and ``tree2`` are blocks (``levels`` 1) or
    subtrees; a level-1 tree's ``root`` merges its two blocks' outputs with the
    ``children`` its ancestors pass down: the first subtree's output of each ancestor, and
    with ``level_root`` the tree's input (max-pooled to the tree's stride; a stage's first
    tree keeps its input that way). A level-1 tree whose width changes projects the
    residual of its first block (``project``).
    """

    def __init__(
        self,
        levels: int,
        make_block: Callable[[int, int, int], nn.Layer],
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        level_root: bool,
        root_residual: bool,
        root_channels: int = 0,
    ) -> None:
        super().__init__()
        # the root's inputs: both subtrees, then the children passed down
        root_channels = root_channels or 2 * out_channels
        if level_root:
            root_channels += in_channels
        self.levels = levels
        self.level_root = level_root
        self.downsample = nn.MaxPool2D(stride, stride=stride) if stride > 1 else None
        self.project = None
        if levels == 1:
            self.tree1 = make_block(in_channels, out_channels, stride)
            self.tree2 = make_block(out_channels, out_channels, 1)
            if in_channels != out_channels:
                self.project = nn.Sequential(
                    nn.Conv2D(in_channels, out_channels, 1, bias_attr=False), LeanBatchNorm2D(out_channels)
                )
            self.root = Root(root_channels, out_channels, residual=root_residual)
        else:
            subtree = dict(level_root=False, root_residual=root_residual)
            self.tree1 = Tree(levels - 1, make_block, in_channels, out_channels, stride=stride, **subtree)
            self.tree2 = Tree(
                levels - 1, make_block, out_channels, out_channels, stride=1,
                root_channels=root_channels + out_channels, **subtree,
            )

    def forward(self, x: paddle.Tensor, children: list[paddle.Tensor] | None = None) -> paddle.Tensor:
        children = [] if children is None else children
        bottom = x if self.downsample is None else self.downsample(x)
        if self.level_root:
            children.append(bottom)
        if self.levels == 1:
            first = self.tree1(x, bottom if self.project is None else self.project(bottom))
            return self.root(self.tree2(first), first, *children)
        first = self.tree1(x)
        return self.tree2(first, children=children + [first])


# --- the model -----------------------------------------------------------------------------


def _conv_level(in_channels: int, out_channels: int, convs: int, *, stride: int) -> nn.Sequential:
    """``convs`` 3x3 conv-BN-ReLUs, the first carrying the stride (as one flat Sequential)."""
    layers: list[nn.Layer] = []
    for i in range(convs):
        layers += [
            nn.Conv2D(in_channels, out_channels, 3, stride=stride if i == 0 else 1, padding=1, bias_attr=False),
            LeanBatchNorm2D(out_channels),
            nn.ReLU(),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


class DLA(Backbone):
    """DLA: a 7x7 conv (``base_layer``), two plain conv levels (``level0``, ``level1``, the
    second strided), four trees each halving the map (``level2..level5``), global pooling
    and a 1x1 conv classifier (``fc``).

    ``levels``: the conv count of ``level0``/``level1``, then each tree's depth;
    ``channels``: each level's width; ``block``: the residual block; ``cardinality`` and
    ``base_width``: the bottleneck's groups and group width (ResNeXt-style ``x`` variants);
    ``residual_root``: the roots add their first input. ``lr_mult_list`` has 7 values:
    ``base_layer``, then each level; ``return_stages`` picks levels 0-5 (strides 1 to 32).
    """

    def __init__(
        self,
        *,
        levels: Sequence[int],
        channels: Sequence[int],
        block: type[BasicBlock | Bottleneck],
        cardinality: int,
        base_width: int,
        residual_root: bool,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        self.base_layer = nn.Sequential(
            nn.Conv2D(3, channels[0], 7, padding=3, bias_attr=False), LeanBatchNorm2D(channels[0]), nn.ReLU()
        )
        self.level0 = _conv_level(channels[0], channels[0], levels[0], stride=1)
        self.level1 = _conv_level(channels[0], channels[1], levels[1], stride=2)
        make_block = block
        if block is Bottleneck:
            make_block = functools.partial(Bottleneck, cardinality=cardinality, base_width=base_width)
        for i in range(2, 6):
            tree = Tree(
                levels[i], make_block, channels[i - 1], channels[i],
                stride=2, level_root=i > 2, root_residual=residual_root,
            )
            self.add_sublayer(f"level{i}", tree)
        self.global_pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Conv2D(channels[5], self.class_num, 1)
        self.flatten = nn.Flatten()

        init_convs_fan_out(self, per_group=False, zero_bias=False)
        stages = [getattr(self, f"level{i}") for i in range(6)]
        self.finish(
            lr_groups={"base_layer": [self.base_layer], **{f"level{i}": [stage] for i, stage in enumerate(stages)}},
            stages=stages,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.level1(self.level0(self.base_layer(x)))
        x = self.level5(self.level4(self.level3(self.level2(x))))
        return self.flatten(self.fc(self.global_pool(x)))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list and DLA docs) ------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "DLA34": 0.7603,
        "DLA46_c": 0.6321,
        "DLA46x_c": 0.6436,
        "DLA60": 0.7610,
        "DLA60x": 0.7753,
        "DLA60x_c": 0.6645,
        "DLA102": 0.7893,
        "DLA102x": 0.7810,
        "DLA102x2": 0.7885,
        "DLA169": 0.7809,
    },
)

# --- registered names ---------------------------------------------------------------------------

_TINY = (16, 32, 64, 64, 128, 256)
_WIDE = (16, 32, 128, 256, 512, 1024)


def _arch(
    levels: tuple[int, ...],
    channels: tuple[int, ...],
    *,
    groups: int = 1,
    group_width: int = 64,
    residual_root: bool = False,
) -> dict[str, Any]:
    """A bottleneck DLA's architecture arguments (``groups`` x ``group_width`` for the ``x`` variants)."""
    return dict(
        levels=levels, channels=channels, block=Bottleneck, cardinality=groups, base_width=group_width,
        residual_root=residual_root,
    )


VARIANTS = {
    "DLA46x_c": _arch((1, 1, 1, 2, 2, 1), _TINY, groups=32, group_width=4),
    "DLA34": dict(
        levels=(1, 1, 1, 2, 2, 1), channels=(16, 32, 64, 128, 256, 512), block=BasicBlock, cardinality=1, base_width=64,
        residual_root=False,
    ),
    "DLA46_c": _arch((1, 1, 1, 2, 2, 1), _TINY),
    "DLA60": _arch((1, 1, 1, 2, 3, 1), _WIDE),
    "DLA60x": _arch((1, 1, 1, 2, 3, 1), _WIDE, groups=32, group_width=4),
    "DLA60x_c": _arch((1, 1, 1, 2, 3, 1), _TINY, groups=32, group_width=4),
    "DLA102": _arch((1, 1, 1, 3, 4, 1), _WIDE, residual_root=True),
    "DLA102x": _arch((1, 1, 1, 3, 4, 1), _WIDE, groups=32, group_width=4, residual_root=True),
    "DLA102x2": _arch((1, 1, 1, 3, 4, 1), _WIDE, groups=64, group_width=4, residual_root=True),
    "DLA169": _arch((1, 1, 2, 3, 5, 1), _WIDE, residual_root=True),
}

BUILDERS = builders(DLA, VARIANTS, WEIGHTS)
