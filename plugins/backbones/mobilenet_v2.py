"""MobileNetV2 (Sandler et al. 2018, https://arxiv.org/abs/1801.04381), weight-compatible
with PaddleClas 2.6's ``MobileNetV2`` and ``MobileNetV2_x*`` (its ``model_zoo`` version).

PaddleClas gives every parameter a fixed global name, so it can build only one such model per
process; here the state-dict keys are the same (they come from the sub-layer names), but the
parameters are named by Paddle, so any number of instances coexist.
"""
from __future__ import annotations

from typing import Sequence

import paddle
from paddle import nn

from corolla.plugins.backbones._layers import (
    ZooConvBN,
    make_builder,
    resolve_lr_mult_list,
    resolve_return_stages,
    run_stages,
    weights_table,
    with_features,
)
from corolla.plugins.backbones._mobile import set_lr_mults, split_stages
from corolla.engine.weights import MODEL_ZOO_URL

# --- building blocks -----------------------------------------------------------


class InvertedResidualUnit(nn.Layer):
    """1x1 expansion (ReLU6), 3x3 depthwise conv (ReLU6), linear 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, expansion: int) -> None:
        super().__init__()
        expanded = int(round(in_channels * expansion))
        self._expand_conv = ZooConvBN(in_channels, expanded, 1, act="relu6")
        self._bottleneck_conv = ZooConvBN(expanded, expanded, 3, stride=stride, groups=expanded, act="relu6")
        self._linear_conv = ZooConvBN(expanded, out_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._linear_conv(self._bottleneck_conv(self._expand_conv(x)))


class InvertedResidualGroup(nn.Layer):
    """``repeats`` units of one width: ``_first_block`` (may change width and stride), then
    ``{name}_2 .. {name}_{repeats}`` with a residual connection."""

    def __init__(
        self, name: str, in_channels: int, out_channels: int, *, repeats: int, stride: int, expansion: int
    ) -> None:
        super().__init__()
        self._first_block = InvertedResidualUnit(in_channels, out_channels, stride=stride, expansion=expansion)
        self._residual_blocks = [
            self.add_sublayer(
                f"{name}_{i}", InvertedResidualUnit(out_channels, out_channels, stride=1, expansion=expansion)
            )
            for i in range(2, repeats + 1)
        ]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._first_block(x)
        for block in self._residual_blocks:
            x = x + block(x)
        return x


# --- the model ---------------------------------------------------------------------

#: groups ``conv2 .. conv8`` as (expansion, out channels, repeats, stride) at scale 1.0
GROUPS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
#: index (into GROUPS) of the last group of each stage: each stage ends before a stride change
STAGE_ENDS = (0, 1, 2, 4, 6)
LR_GROUPS = ("stem", *(f"stage{i}" for i in range(len(STAGE_ENDS))))


class MobileNetV2Model(nn.Layer):
    """Stem ``conv1``, inverted-residual groups ``conv2 .. conv8``, a 1x1 ``conv9``, global
    pooling and the classifier ``out``.

    ``lr_mult_list`` has 6 values: the stem, then the 5 stages ending at ``STAGE_ENDS``
    (``conv9`` and the classifier keep the base rate); ``return_stages`` picks stages 0-4.
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

        self.conv1 = ZooConvBN(3, int(32 * scale), 3, stride=2, act="relu6")
        in_channels = int(32 * scale)
        groups = []
        for i, (expansion, out, repeats, stride) in enumerate(GROUPS):
            group_name = f"conv{i + 2}"
            group = InvertedResidualGroup(
                group_name, in_channels, int(out * scale), repeats=repeats, stride=stride, expansion=expansion
            )
            groups.append(self.add_sublayer(group_name, group))
            in_channels = int(out * scale)
        self._stages = split_stages(groups, STAGE_ENDS)
        # PaddleClas widens the last conv only above scale 1.0
        self.out_c = int(1280 * scale) if scale > 1.0 else 1280
        self.conv9 = ZooConvBN(in_channels, self.out_c, 1, act="relu6")
        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.out = nn.Linear(self.out_c, class_num)

        set_lr_mults([[self.conv1], *self._stages], self.lr_mult_list)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | dict[str, paddle.Tensor]:
        features: dict[str, paddle.Tensor] = {}
        x = run_stages(self._stages, self.conv1(x), self._wanted, features)
        x = self.pool2d_avg(self.conv9(x))
        return with_features(self.out(self.flatten(x)), features, bool(self._wanted))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "MobileNetV2_x0_25": 0.5321,
        "MobileNetV2_x0_5": 0.6503,
        "MobileNetV2_x0_75": 0.6983,
        "MobileNetV2": 0.7215,
        "MobileNetV2_x1_5": 0.7412,
        "MobileNetV2_x2_0": 0.7523,
        "MobileNetV2_ssld": 0.7674,
    },
)

# --- builders ---------------------------------------------------------------------------------


def _builder(name: str, scale: float):
    summary = (
        f"MobileNetV2 at width {scale}. lr_mult_list groups: stem, stage0..stage4 "
        "(conv2, conv3, conv4, conv5-6, conv7-8); return_stages 0-4."
    )
    return make_builder(name, MobileNetV2Model, WEIGHTS, summary, scale=scale)


MobileNetV2_x0_25 = _builder("MobileNetV2_x0_25", 0.25)
MobileNetV2_x0_5 = _builder("MobileNetV2_x0_5", 0.5)
MobileNetV2_x0_75 = _builder("MobileNetV2_x0_75", 0.75)
MobileNetV2 = _builder("MobileNetV2", 1.0)
MobileNetV2_x1_5 = _builder("MobileNetV2_x1_5", 1.5)
MobileNetV2_x2_0 = _builder("MobileNetV2_x2_0", 2.0)
