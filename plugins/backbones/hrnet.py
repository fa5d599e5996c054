"""HRNet (Wang et al. 2019, https://arxiv.org/abs/1908.07919), the classification variant
(``_C``): parallel branches at strides 4, 8, 16 and 32 that exchange information after every
module, then a head that merges them from fine to coarse. ``SE_`` adds squeeze-excitation to
every block. Weight-compatible with PaddleClas 2.6's ``HRNet_W*_C`` and ``SE_HRNet_W64_C``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import ConvBN

# --- building blocks -----------------------------------------------------------------------


class SqueezeExcitation(nn.Layer):
    """Channel attention with linear layers: pooled features -> ``fc_squeeze`` (1/16 of the
    channels) -> ReLU -> ``fc_excitation`` -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.fc_squeeze = uniform_linear(channels, channels // reduction)
        self.fc_excitation = uniform_linear(channels // reduction, channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self.fc_excitation(nn.functional.relu(self.fc_squeeze(self.avg_pool(x).flatten(1))))
        return x * nn.functional.sigmoid(gate).unsqueeze([2, 3])


class BasicBlock(nn.Layer):
    """Two 3x3 conv-BNs (and squeeze-excitation) plus the identity."""

    def __init__(self, channels: int, *, has_se: bool) -> None:
        super().__init__()
        self.conv1 = ConvBN(channels, channels, 3, act="relu")
        self.conv2 = ConvBN(channels, channels, 3)
        self.se = SqueezeExcitation(channels) if has_se else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.conv2(self.conv1(x))
        if self.se is not None:
            y = self.se(y)
        return nn.functional.relu(x + y)


class BottleneckBlock(nn.Layer):
    """1x1 -> 3x3 -> 1x1 conv-BNs widening ``planes`` four times (and squeeze-excitation), plus
    the identity or, with ``project``, a 1x1 conv-BN (``conv_down``)."""

    def __init__(self, in_channels: int, planes: int, *, has_se: bool, project: bool) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_channels, planes, 1, act="relu")
        self.conv2 = ConvBN(planes, planes, 3, act="relu")
        self.conv3 = ConvBN(planes, planes * 4, 1)
        self.conv_down = ConvBN(in_channels, planes * 4, 1) if project else None
        self.se = SqueezeExcitation(planes * 4) if has_se else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.conv3(self.conv2(self.conv1(x)))
        if self.conv_down is not None:
            x = self.conv_down(x)
        if self.se is not None:
            y = self.se(y)
        return nn.functional.relu(x + y)


class FuseLayers(nn.Layer):
    """Every output branch ``i`` sums all input branches, brought to its resolution and width:
    a coarser branch ``j`` by a 1x1 conv-BN and nearest upsampling by ``2**(j - i)``, a finer
    one by ``i - j`` strided 3x3 conv-BNs (ReLU between them); then ReLU.

    The convs sit in one flat list (``residual_func_list``, PaddleClas's order: by output,
    then by input branch); ``paths[i][j]`` names the ones from input ``j`` to output ``i``.
    """

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.residual_func_list = nn.LayerList()
        self.paths: list[list[list[ConvBN]]] = []
        for i, out_channels in enumerate(channels):
            row = []
            for j, in_channels in enumerate(channels):
                if j > i:
                    convs = [ConvBN(in_channels, out_channels, 1)]
                elif j < i:
                    convs = [ConvBN(in_channels, in_channels, 3, stride=2, act="relu") for _ in range(i - j - 1)]
                    convs.append(ConvBN(in_channels, out_channels, 3, stride=2))
                else:
                    convs = []
                self.residual_func_list.extend(convs)
                row.append(convs)
            self.paths.append(row)

    def forward(self, branches: list[paddle.Tensor]) -> list[paddle.Tensor]:
        outputs = []
        for i, row in enumerate(self.paths):
            total = branches[i]
            for j, convs in enumerate(row):
                if j == i:
                    continue
                y = branches[j]
                for conv in convs:
                    y = conv(y)
                if j > i:
                    y = nn.functional.interpolate(y, scale_factor=2 ** (j - i), mode="nearest")
                total = total + y
            outputs.append(nn.functional.relu(total))
        return outputs


class HighResolutionModule(nn.Layer):
    """Four :class:`BasicBlock` per branch (``basic_block_list``), then :class:`FuseLayers`."""

    def __init__(self, channels: list[int], *, has_se: bool) -> None:
        super().__init__()
        self.basic_block_list = nn.LayerList(
            [nn.Sequential(*(BasicBlock(c, has_se=has_se) for _ in range(4))) for c in channels]
        )
        self.fuse_func = FuseLayers(channels)

    def forward(self, branches: list[paddle.Tensor]) -> list[paddle.Tensor]:
        return self.fuse_func([blocks(x) for blocks, x in zip(self.basic_block_list, branches)])


class Stage(nn.Layer):
    """``modules`` high-resolution modules over ``len(channels)`` branches (``stage_func_list``)."""

    def __init__(self, modules: int, channels: list[int], *, has_se: bool) -> None:
        super().__init__()
        self.stage_func_list = nn.LayerList([HighResolutionModule(channels, has_se=has_se) for _ in range(modules)])

    def forward(self, branches: list[paddle.Tensor]) -> list[paddle.Tensor]:
        for module in self.stage_func_list:
            branches = module(branches)
        return branches


class BranchBottlenecks(nn.Layer):
    """One projecting :class:`BottleneckBlock` per branch (``func_list``)."""

    def __init__(self, channels: list[int], planes: tuple[int, ...], *, has_se: bool) -> None:
        super().__init__()
        self.func_list = nn.LayerList(
            [BottleneckBlock(c, p, has_se=has_se, project=True) for c, p in zip(channels, planes)]
        )

    def forward(self, branches: list[paddle.Tensor]) -> list[paddle.Tensor]:
        return [block(x) for block, x in zip(self.func_list, branches)]


# --- the model -----------------------------------------------------------------------------

#: the head's bottleneck widths per branch, and the widths its strided convs merge them into
HEAD_PLANES = (32, 64, 128, 256)
HEAD_MERGE_CHANNELS = (256, 512, 1024)
HEAD_CHANNELS = 2048


class HRNet(Backbone):
    """HRNet: two strided 3x3 conv-BNs (``conv_layer1_1``, ``conv_layer1_2``), four bottlenecks
    (``layer1``), then stages of 2, 3 and 4 branches (``st2``: 1 module, ``st3``: 4, ``st4``: 3),
    each new branch made by a strided conv from the coarsest one (``conv_tr*``). The head
    widens each branch with a bottleneck (``last_cls``), merges them from fine to coarse with
    strided convs (``cls_head_conv_list``), widens to 2048 (``conv_last``), pools, and
    classifies (``fc``).

    ``width``: channels of the finest branch (each coarser one doubles); ``has_se``:
    squeeze-excitation in every block. ``lr_mult_list`` has 6 values: the stem, ``layer1``,
    ``st2``, ``st3``, ``st4`` (each with the convs that make its new branch) and the head
    before ``fc``. ``return_stages`` gives the outputs of ``st4``'s four branches (stages
    0-3, strides 4 to 32), what PaddleClas's HRNet returns as its one stage ``st4``.
    """

    def __init__(self, *, width: int, has_se: bool, **contract: Any) -> None:
        super().__init__(**contract)
        channels = [width * 2**i for i in range(4)]
        self.conv_layer1_1 = ConvBN(3, 64, 3, stride=2, act="relu")
        self.conv_layer1_2 = ConvBN(64, 64, 3, stride=2, act="relu")
        self.layer1 = nn.Sequential(
            *(BottleneckBlock(64 if i == 0 else 256, 64, has_se=has_se, project=i == 0) for i in range(4))
        )
        self.conv_tr1_1 = ConvBN(256, channels[0], 3, act="relu")
        self.conv_tr1_2 = ConvBN(256, channels[1], 3, stride=2, act="relu")
        self.st2 = Stage(1, channels[:2], has_se=has_se)
        self.conv_tr2 = ConvBN(channels[1], channels[2], 3, stride=2, act="relu")
        self.st3 = Stage(4, channels[:3], has_se=has_se)
        self.conv_tr3 = ConvBN(channels[2], channels[3], 3, stride=2, act="relu")
        self.st4 = Stage(3, channels, has_se=has_se)
        self.branch_outputs = nn.LayerList([nn.Identity() for _ in channels])  # where return_stages reads st4

        self.last_cls = BranchBottlenecks(channels, HEAD_PLANES, has_se=has_se)
        self.cls_head_conv_list = nn.LayerList(
            [ConvBN(p * 4, c, 3, stride=2, act="relu") for p, c in zip(HEAD_PLANES, HEAD_MERGE_CHANNELS)]
        )
        self.conv_last = ConvBN(HEAD_MERGE_CHANNELS[-1], HEAD_CHANNELS, 1, act="relu")
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten()
        self.fc = uniform_linear(HEAD_CHANNELS, self.class_num)
        self.finish(
            lr_groups={
                "stem": [self.conv_layer1_1, self.conv_layer1_2],
                "layer1": [self.layer1],
                "st2": [self.conv_tr1_1, self.conv_tr1_2, self.st2],
                "st3": [self.conv_tr2, self.st3],
                "st4": [self.conv_tr3, self.st4],
                "head": [self.last_cls, self.cls_head_conv_list, self.conv_last],
            },
            stages=list(self.branch_outputs),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.layer1(self.conv_layer1_2(self.conv_layer1_1(x)))
        branches = self.st2([self.conv_tr1_1(x), self.conv_tr1_2(x)])
        branches = self.st3(branches + [self.conv_tr2(branches[-1])])
        branches = self.st4(branches + [self.conv_tr3(branches[-1])])
        branches = [tap(b) for tap, b in zip(self.branch_outputs, branches)]

        widened = self.last_cls(branches)
        y = widened[0]
        for conv, coarser in zip(self.cls_head_conv_list, widened[1:]):
            y = coarser + conv(y)
        return self.fc(self.flatten(self.avg_pool(self.conv_last(y))))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {
        "HRNet_W18_C": 0.7692,
        "HRNet_W30_C": 0.7804,
        "HRNet_W32_C": 0.7828,
        "HRNet_W40_C": 0.7877,
        "HRNet_W44_C": 0.7900,
        "HRNet_W48_C": 0.7895,
        "HRNet_W64_C": 0.7930,
        "HRNet_W18_C_ssld": 0.81162,
        "HRNet_W48_C_ssld": 0.8363,
        "SE_HRNet_W64_C_ssld": 0.8475,
    },
)

# --- registered names (PaddleClas publishes no HRNet_W60_C weights, and SE_HRNet_W64_C's as SSLD only)

VARIANTS = {
    "HRNet_W18_C": dict(width=18, has_se=False),
    "HRNet_W30_C": dict(width=30, has_se=False),
    "HRNet_W32_C": dict(width=32, has_se=False),
    "HRNet_W40_C": dict(width=40, has_se=False),
    "HRNet_W44_C": dict(width=44, has_se=False),
    "HRNet_W48_C": dict(width=48, has_se=False),
    "HRNet_W60_C": dict(width=60, has_se=False),
    "HRNet_W64_C": dict(width=64, has_se=False),
    "SE_HRNet_W64_C": dict(width=64, has_se=True),
}

#: the smallest input the tests use: on 32x32 images the coarsest branch is 1x1, and with two
#: images its BatchNorm statistics give gradients near 1e10 (PaddleClas's model too)
MIN_INPUT_SIZE = 64

BUILDERS = builders(HRNet, VARIANTS, WEIGHTS)
