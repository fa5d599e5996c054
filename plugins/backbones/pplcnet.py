"""PP-LCNet (Cui et al. 2021, https://arxiv.org/abs/2109.15099): PaddlePaddle's CPU-friendly
lightweight network, weight-compatible with PaddleClas 2.6's ``PPLCNet_x*``."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._checks import check_choice, check_stride_list
from corolla.plugins.backbones._init import kaiming_init_conv_bn
from corolla.plugins.backbones._layers import ConvBN, LastConvHead, SqueezeExcite, make_divisible
from corolla.plugins.backbones._regularize import exempt_norms_from_decay

#: Paddle's default hard-sigmoid slope (``nn.Hardsigmoid``), which PP-LCNet's SE gate uses
HARDSIGMOID_SLOPE = 0.1666667

# --- building blocks -----------------------------------------------------------------------


class DepthwiseSeparable(nn.Layer):
    """Depthwise conv, optional squeeze-excitation, pointwise conv."""

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int, use_se: bool, act: str
    ) -> None:
        super().__init__()
        self.dw_conv = ConvBN(in_channels, in_channels, kernel_size, stride=stride, groups=in_channels, act=act)
        self.se = SqueezeExcite(in_channels, gate_slope=HARDSIGMOID_SLOPE) if use_se else None
        self.pw_conv = ConvBN(in_channels, out_channels, 1, act=act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


# --- the model -----------------------------------------------------------------------------

#: stage name -> its blocks as (kernel, in channels, out channels, stride, use_se) at scale 1.0;
#: ``stride_list[1:]`` replaces the first stride of blocks3..blocks6
STAGES: dict[str, tuple[tuple[int, int, int, int, bool], ...]] = {
    "blocks2": ((3, 16, 32, 1, False),),
    "blocks3": ((3, 32, 64, 2, False), (3, 64, 64, 1, False)),
    "blocks4": ((3, 64, 128, 2, False), (3, 128, 128, 1, False)),
    "blocks5": ((3, 128, 256, 2, False),) + ((5, 256, 256, 1, False),) * 5,
    "blocks6": ((5, 256, 512, 2, True), (5, 512, 512, 1, True)),
}
ACTIVATIONS = ("hardswish", "relu", "relu6")


class PPLCNet(LastConvHead, Backbone):
    """PP-LCNet: stem ``conv1``, five depthwise-separable stages ``blocks2..blocks6``, global
    pooling, an optional wide 1x1 ``last_conv`` (``class_expand`` channels; ``use_last_conv``)
    and the classifier ``fc``.

    ``scale``: the width; ``act``: hardswish, relu or relu6; ``stride_list``: 5 strides (the
    stem, then the first block of ``blocks3..blocks6``; each an int or a [height, width] pair).
    ``lr_mult_list`` has 6 values: the stem, then each stage; ``return_stages`` picks stages 0-4
    (``blocks2..blocks6``).
    """

    def __init__(
        self,
        *,
        scale: float,
        dropout_prob: float | None = 0.2,
        class_expand: int = 1280,
        use_last_conv: bool = True,
        act: str = "hardswish",
        stride_list: Sequence[int | Sequence[int]] = (2, 2, 2, 2, 2),
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        strides = check_stride_list(
            name, stride_list, len(STAGES), "the stem, then the first block of blocks3..blocks6"
        )
        check_choice(name, "act", act, ACTIVATIONS)

        self.conv1 = ConvBN(3, make_divisible(16 * scale), 3, stride=strides[0], act=act)
        stages = []
        for i, (stage, blocks) in enumerate(STAGES.items()):
            layers = [
                DepthwiseSeparable(
                    make_divisible(in_c * scale), make_divisible(out_c * scale), kernel_size=k,
                    stride=strides[i] if j == 0 and i > 0 else s, use_se=se, act=act,
                )
                for j, (k, in_c, out_c, s, se) in enumerate(blocks)
            ]
            stages.append(self.add_sublayer(stage, nn.Sequential(*layers)))

        self.add_head(
            make_divisible(STAGES["blocks6"][-1][2] * scale), use_last_conv=use_last_conv, class_expand=class_expand, act=act,
            dropout_prob=dropout_prob,
        )

        kaiming_init_conv_bn(self)
        exempt_norms_from_decay(self)
        self.finish(lr_groups={"stem": [self.conv1], **{n: [s] for n, s in zip(STAGES, stages)}}, stages=stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv1(x)
        for stage in STAGES:
            x = getattr(self, stage)(x)
        return self.head(x)


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its PP-LCNet docs) ----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {
        "PPLCNet_x0_25": 0.5186,
        "PPLCNet_x0_35": 0.5809,
        "PPLCNet_x0_5": 0.6314,
        "PPLCNet_x0_75": 0.6818,
        "PPLCNet_x1_0": 0.7132,
        "PPLCNet_x1_5": 0.7371,
        "PPLCNet_x2_0": 0.7518,
        "PPLCNet_x2_5": 0.7660,
        "PPLCNet_x0_5_ssld": 0.6610,
        "PPLCNet_x1_0_ssld": 0.7439,
        "PPLCNet_x2_5_ssld": 0.8082,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "PPLCNet_x0_25": dict(scale=0.25),
    "PPLCNet_x0_35": dict(scale=0.35),
    "PPLCNet_x0_5": dict(scale=0.5),
    "PPLCNet_x0_75": dict(scale=0.75),
    "PPLCNet_x1_0": dict(scale=1.0),
    "PPLCNet_x1_5": dict(scale=1.5),
    "PPLCNet_x2_0": dict(scale=2.0),
    "PPLCNet_x2_5": dict(scale=2.5),
}

BUILDERS = builders(PPLCNet, VARIANTS, WEIGHTS)
