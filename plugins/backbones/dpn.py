"""DPN, Dual Path Networks (Chen et al. 2017, https://arxiv.org/abs/1707.01629): every block
adds to a residual path (features reused, ResNet-style) and appends to a densely connected
path (new features, DenseNet-style). Weight-compatible with PaddleClas 2.6's ``DPN*``."""
from __future__ import annotations

from typing import Any, Sequence, Union

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._layers import LeanBatchNorm2D, NormReLUConv, ZooConvBN

#: a block's input: the two paths (residual, dense), or at a stage's start one tensor of both
Paths = Union[paddle.Tensor, tuple[paddle.Tensor, paddle.Tensor]]

# --- building blocks -----------------------------------------------------------------------


class DualPathBlock(nn.Layer):
    """1x1 -> grouped 3x3 -> 1x1 pre-activation convs on both paths concatenated; the output's
    first ``width`` channels add to the residual path, the other ``increment`` are appended
    to the dense path.

    A stage's first block (``project``) makes both paths anew from its input with a 1x1 conv
    (``c1x1_w_func``: ``width`` residual channels and ``2 * increment`` dense ones), strided
    with the block (``stride``).
    """

    def __init__(
        self, in_channels: int, *, inner: int, width: int, increment: int, groups: int, project: bool, stride: int
    ) -> None:
        super().__init__()
        self.width = width
        self.increment = increment
        self.c1x1_w_func = NormReLUConv(in_channels, width + 2 * increment, 1, stride=stride) if project else None
        self.c1x1_a_func = NormReLUConv(in_channels, inner, 1)
        self.c3x3_b_func = NormReLUConv(inner, inner, 3, stride=stride, groups=groups)
        self.c1x1_c_func = NormReLUConv(inner, width + increment, 1)

    def forward(self, paths: Paths) -> tuple[paddle.Tensor, paddle.Tensor]:
        joined = paddle.concat(list(paths), axis=1) if isinstance(paths, tuple) else paths
        if self.c1x1_w_func is not None:
            residual, dense = paddle.split(self.c1x1_w_func(joined), [self.width, 2 * self.increment], axis=1)
        else:
            residual, dense = paths
        y = self.c1x1_c_func(self.c3x3_b_func(self.c1x1_a_func(joined)))
        added, appended = paddle.split(y, [self.width, self.increment], axis=1)
        return residual + added, paddle.concat([dense, appended], axis=1)


class JoinPaths(nn.Layer):
    """Both paths concatenated into one tensor: a stage's output."""

    def forward(self, paths: tuple[paddle.Tensor, paddle.Tensor]) -> paddle.Tensor:
        return paddle.concat(list(paths), axis=1)


# --- the model -----------------------------------------------------------------------------


class DPN(Backbone):
    """DPN: a strided conv-BN-ReLU stem (``conv1_x_1_func``), max pool, four stages of
    :class:`DualPathBlock` (``dpn1``, ``dpn2``, ... numbered across stages; the first of each
    stage projects, strided from the second stage on), a final BatchNorm-ReLU over both paths
    (``conv5_x_x_bn``), global pooling and the classifier ``out``.

    ``stem_channels`` and ``stem_kernel``: the stem conv; per stage: ``depths`` (blocks),
    ``widths`` (residual path), ``increments`` (dense channels each block adds) and
    ``inner`` (the 3x3 conv's width, in ``groups`` groups). ``lr_mult_list`` has 5 values:
    the stem, then each stage (the last with ``conv5_x_x_bn``); ``return_stages`` picks
    stages 0-3, both paths concatenated.
    """

    def __init__(
        self,
        *,
        stem_channels: int,
        stem_kernel: int,
        depths: Sequence[int],
        widths: Sequence[int],
        increments: Sequence[int],
        inner: Sequence[int],
        groups: int,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        self.conv1_x_1_func = ZooConvBN(3, stem_channels, stem_kernel, stride=2, act="relu")
        self.pool2d_max = nn.MaxPool2D(3, stride=2, padding=1)
        self.stages: list[list[DualPathBlock]] = []
        channels = stem_channels
        number = 1
        for stage, (count, width, increment, inner_channels) in enumerate(zip(depths, widths, increments, inner)):
            blocks = []
            for i in range(count):
                block = DualPathBlock(
                    channels, inner=inner_channels, width=width, increment=increment, groups=groups,
                    project=i == 0, stride=2 if i == 0 and stage > 0 else 1,
                )
                blocks.append(self.add_sublayer(f"dpn{number}", block))
                number += 1
                channels = width + (i + 3) * increment
            self.stages.append(blocks)
        self.stage_outputs = nn.LayerList([JoinPaths() for _ in self.stages])
        self.conv5_x_x_bn = LeanBatchNorm2D(channels)
        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten()
        self.out = nn.Linear(
            channels, self.class_num, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-0.01, 0.01))
        )
        stage_groups = {f"conv{i + 2}": list(blocks) for i, blocks in enumerate(self.stages)}
        stage_groups["conv5"].append(self.conv5_x_x_bn)
        self.finish(lr_groups={"stem": [self.conv1_x_1_func], **stage_groups}, stages=list(self.stage_outputs))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        paths: Paths = self.pool2d_max(self.conv1_x_1_func(x))
        for blocks, join in zip(self.stages, self.stage_outputs):
            for block in blocks:
                paths = block(paths)
            paths = join(paths)
        x = nn.functional.relu(self.conv5_x_x_bn(paths))
        return self.out(self.flatten(self.pool2d_avg(x)))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"DPN68": 0.7678, "DPN92": 0.7985, "DPN98": 0.8059, "DPN107": 0.8089, "DPN131": 0.8070},
)

# --- registered names ---------------------------------------------------------------------------

_WIDTHS = (256, 512, 1024, 2048)

VARIANTS = {
    "DPN68": dict(
        stem_channels=10, stem_kernel=3, depths=(3, 4, 12, 3), widths=(64, 128, 256, 512), increments=(16, 32, 32, 64),
        inner=(128, 256, 512, 1024), groups=32,
    ),
    "DPN92": dict(
        stem_channels=64, stem_kernel=7, depths=(3, 4, 20, 3), widths=_WIDTHS, increments=(16, 32, 24, 128),
        inner=(96, 192, 384, 768), groups=32,
    ),
    "DPN98": dict(
        stem_channels=96, stem_kernel=7, depths=(3, 6, 20, 3), widths=_WIDTHS, increments=(16, 32, 32, 128),
        inner=(160, 320, 640, 1280), groups=40,
    ),
    "DPN107": dict(
        stem_channels=128, stem_kernel=7, depths=(4, 8, 20, 3), widths=_WIDTHS, increments=(20, 64, 64, 128),
        inner=(200, 400, 800, 1600), groups=50,
    ),
    "DPN131": dict(
        stem_channels=128, stem_kernel=7, depths=(4, 8, 28, 3), widths=_WIDTHS, increments=(16, 32, 32, 128),
        inner=(160, 320, 640, 1280), groups=40,
    ),
}

BUILDERS = builders(DPN, VARIANTS, WEIGHTS)
