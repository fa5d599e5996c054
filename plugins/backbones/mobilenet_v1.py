"""MobileNetV1 (Howard et al. 2017, https://arxiv.org/abs/1704.04861), weight-compatible
with PaddleClas 2.6's ``MobileNetV1`` and ``MobileNetV1_x*``."""
from __future__ import annotations

from typing import Sequence

import paddle
from paddle import nn
from paddle.nn.initializer import KaimingNormal

from corolla.plugins.backbones._layers import (
    ConvBN,
    make_builder,
    resolve_lr_mult_list,
    resolve_return_stages,
    run_stages,
    weights_table,
    with_features,
)
from corolla.plugins.backbones._mobile import kaiming_init_conv_bn, set_lr_mults, split_stages
from corolla.engine.weights import MODEL_ZOO_URL

# --- building blocks -----------------------------------------------------------


class DepthwiseSeparable(nn.Layer):
    """A 3x3 depthwise conv then a 1x1 pointwise conv, each with BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvBN(in_channels, in_channels, 3, stride=stride, groups=in_channels, act="relu")
        self.pointwise_conv = ConvBN(in_channels, out_channels, 1, act="relu")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


# --- the model ---------------------------------------------------------------------

#: blocks as (in channels, out channels, stride) at scale 1.0
BLOCKS: tuple[tuple[int, int, int], ...] = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 1024, 2),
    (1024, 1024, 1),
)
#: index of the last block of each stage: PaddleClas's four stage patterns, then the last block
STAGE_ENDS = (0, 2, 4, 10, 12)
LR_GROUPS = ("stem", *(f"stage{i}" for i in range(len(STAGE_ENDS))))


class MobileNetV1Model(nn.Layer):
    """Stem ``conv``, 13 depthwise-separable ``blocks``, global pooling and the classifier ``fc``.

    ``lr_mult_list`` has 6 values: the stem, then the 5 stages ending at ``STAGE_ENDS``
    (the classifier keeps the base rate); ``return_stages`` picks stages 0-4.
    """

    def __init__(
        self,
        *,
        name: str,
        scale: float,
        class_num: int = 1000,
        lr_mult_list: Sequence[float] | None = None,
        return_stages: bool | int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.lr_mult_list = resolve_lr_mult_list(name, lr_mult_list, LR_GROUPS)
        self._wanted = frozenset(resolve_return_stages(name, return_stages, len(STAGE_ENDS)))

        self.conv = ConvBN(3, int(32 * scale), 3, stride=2, act="relu")
        self.blocks = nn.Sequential(
            *(DepthwiseSeparable(int(i * scale), int(o * scale), stride=stride) for i, o, stride in BLOCKS)
        )
        self._stages = split_stages(self.blocks, STAGE_ENDS)
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = nn.Linear(
            int(BLOCKS[-1][1] * scale), class_num, weight_attr=paddle.ParamAttr(initializer=KaimingNormal())
        )

        kaiming_init_conv_bn(self)
        set_lr_mults([[self.conv], *self._stages], self.lr_mult_list)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | dict[str, paddle.Tensor]:
        features: dict[str, paddle.Tensor] = {}
        x = run_stages(self._stages, self.conv(x), self._wanted, features)
        return with_features(self.fc(self.flatten(self.avg_pool(x))), features, bool(self._wanted))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {
        "MobileNetV1_x0_25": 0.5143,
        "MobileNetV1_x0_5": 0.6352,
        "MobileNetV1_x0_75": 0.6881,
        "MobileNetV1": 0.7099,
        "MobileNetV1_ssld": 0.7789,
    },
)

# --- builders ---------------------------------------------------------------------------------


def _builder(name: str, scale: float):
    summary = (
        f"MobileNetV1 at width {scale}. lr_mult_list groups: stem, stage0..stage4 "
        "(blocks 0, 1-2, 3-4, 5-10, 11-12); return_stages 0-4."
    )
    return make_builder(name, MobileNetV1Model, WEIGHTS, summary, scale=scale)


MobileNetV1_x0_25 = _builder("MobileNetV1_x0_25", 0.25)
MobileNetV1_x0_5 = _builder("MobileNetV1_x0_5", 0.5)
MobileNetV1_x0_75 = _builder("MobileNetV1_x0_75", 0.75)
MobileNetV1 = _builder("MobileNetV1", 1.0)
