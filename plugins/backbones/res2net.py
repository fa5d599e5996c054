"""Res2Net (Gao et al. 2019, https://arxiv.org/abs/1904.01169): ResNet bottlenecks whose
3x3 convolution works on ``scales`` channel groups joined hierarchically, which widens the
range of receptive fields inside one block; ``_vd`` adds ResNet-D's deep stem and
average-pool shortcuts. Weight-compatible with PaddleClas 2.6's ``Res2Net*``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import ZooConvBN

# --- building blocks -----------------------------------------------------------------------


class Res2NetBottleneck(nn.Layer):
    """1x1 conv (``conv0``), a 3x3 conv per channel group but the last, 1x1 conv (``conv2``),
    plus the shortcut.

    Each group's 3x3 conv also takes the previous group's output, except in a block that
    strides: there every group is convolved on its own and the untouched last group is
    average-pooled to the new size. The 3x3 convs are named as PaddleClas names them
    (``<block>_branch2b_<i>``, e.g. ``res4b3_branch2b_1``), so that its weights load.

    ``shortcut``: ``"identity"``; ``"conv"``, a 1x1 conv-BN with the block's stride; or
    ``"pool_conv"``, ResNet-D's 2x2 average pool and then a 1x1 conv-BN.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        width: int,
        scales: int,
        stride: int,
        block_name: str,
        shortcut: str,
    ) -> None:
        super().__init__()
        self.scales = scales
        self.stride = stride
        self.conv0 = ZooConvBN(in_channels, width, 1, act="relu")
        self.group_convs = tuple(
            self.add_sublayer(
                f"{block_name}_branch2b_{i}",
                ZooConvBN(width // scales, width // scales, 3, stride=stride, act="relu"),
            )
            for i in range(1, scales)
        )
        self.pool2d_avg = nn.AvgPool2D(3, stride=stride, padding=1) if stride != 1 else None
        self.conv2 = ZooConvBN(width, out_channels, 1)
        self.short_pool = nn.AvgPool2D(2, stride=2, ceil_mode=True) if shortcut == "pool_conv" else None
        conv_stride = stride if shortcut == "conv" else 1
        self.short = ZooConvBN(in_channels, out_channels, 1, stride=conv_stride) if shortcut != "identity" else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        groups = paddle.split(self.conv0(x), self.scales, axis=1)
        outputs: list[paddle.Tensor] = []
        for i, conv in enumerate(self.group_convs):
            outputs.append(conv(groups[i] if i == 0 or self.stride != 1 else groups[i] + outputs[-1]))
        outputs.append(groups[-1] if self.pool2d_avg is None else self.pool2d_avg(groups[-1]))
        y = self.conv2(paddle.concat(outputs, axis=1))
        if self.short is not None:
            x = self.short(x if self.short_pool is None else self.short_pool(x))
        return nn.functional.relu(x + y)


# --- the model -----------------------------------------------------------------------------

#: depth -> blocks per stage
DEPTHS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 12, 48, 3),
}
STAGE_OUT_CHANNELS = (256, 512, 1024, 2048)


def _block_name(stage: int, index: int, depth: int) -> str:
    """PaddleClas's name of a block: ``res2a, res2b, ...``; the long third stage of the
    deeper nets counts instead (``res4a, res4b1, res4b2, ...``)."""
    prefix = f"res{stage + 2}"
    if depth > 50 and stage == 2:
        return prefix + ("a" if index == 0 else f"b{index}")
    return prefix + chr(ord("a") + index)


class Res2Net(Backbone):
    """Res2Net of ``depth`` layers (50, 101, 152, 200): a stem, max pool, four stages of
    :class:`Res2NetBottleneck` blocks (``bb_<stage>_<block>``), global pooling and the
    classifier ``out``.

    ``width``: channels of one group in the first stage (doubling each stage); ``scales``:
    the number of groups; ``vd``: the deep 3-conv stem (``conv1_1..conv1_3``) and shortcuts
    that average-pool before their 1x1 conv, instead of one 7x7 conv (``conv1``) and strided
    1x1 shortcuts. ``lr_mult_list`` has 5 values: the stem, then each stage;
    ``return_stages`` picks stages 0-3.
    """

    def __init__(self, *, depth: int, width: int, scales: int, vd: bool, **contract: Any) -> None:
        super().__init__(**contract)
        if vd:
            self.conv1_1 = ZooConvBN(3, 32, 3, stride=2, act="relu")
            self.conv1_2 = ZooConvBN(32, 32, 3, act="relu")
            self.conv1_3 = ZooConvBN(32, 64, 3, act="relu")
            self.stem = (self.conv1_1, self.conv1_2, self.conv1_3)
        else:
            self.conv1 = ZooConvBN(3, 64, 7, stride=2, act="relu")
            self.stem = (self.conv1,)
        self.pool2d_max = nn.MaxPool2D(3, stride=2, padding=1)

        self.stages: list[list[Res2NetBottleneck]] = []
        in_channels = 64
        for stage, (count, out_channels) in enumerate(zip(DEPTHS[depth], STAGE_OUT_CHANNELS)):
            blocks = []
            for index in range(count):
                stride = 2 if index == 0 and stage > 0 else 1
                if index > 0:
                    shortcut = "identity"
                elif vd and stage > 0:
                    shortcut = "pool_conv"
                else:
                    shortcut = "conv"
                block = Res2NetBottleneck(
                    in_channels, out_channels, width=width * scales * 2**stage, scales=scales, stride=stride,
                    block_name=_block_name(stage, index, depth), shortcut=shortcut,
                )
                blocks.append(self.add_sublayer(f"bb_{stage}_{index}", block))
                in_channels = out_channels
            self.stages.append(blocks)

        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten()
        self.out = uniform_linear(in_channels, self.class_num)
        self.finish(
            lr_groups={"stem": list(self.stem), **{f"stage{i}": blocks for i, blocks in enumerate(self.stages)}},
            stages=[blocks[-1] for blocks in self.stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for layer in self.stem:
            x = layer(x)
        x = self.pool2d_max(x)
        for blocks in self.stages:
            for block in blocks:
                x = block(x)
        return self.out(self.flatten(self.pool2d_avg(x)))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "Res2Net50_26w_4s": 0.7933,
        "Res2Net50_14w_8s": 0.7946,
        "Res2Net50_vd_26w_4s": 0.7975,
        "Res2Net101_vd_26w_4s": 0.8064,
        "Res2Net200_vd_26w_4s": 0.8121,
        "Res2Net50_vd_26w_4s_ssld": 0.831,
        "Res2Net101_vd_26w_4s_ssld": 0.839,
        "Res2Net200_vd_26w_4s_ssld": 0.8513,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "Res2Net50_14w_8s": dict(depth=50, width=14, scales=8, vd=False),
    "Res2Net50_26w_4s": dict(depth=50, width=26, scales=4, vd=False),
    "Res2Net50_vd_26w_4s": dict(depth=50, width=26, scales=4, vd=True),
    "Res2Net101_vd_26w_4s": dict(depth=101, width=26, scales=4, vd=True),
    "Res2Net200_vd_26w_4s": dict(depth=200, width=26, scales=4, vd=True),
}

BUILDERS = builders(Res2Net, VARIANTS, WEIGHTS)
