"""PP-LCNet (Cui et al. 2021, https://arxiv.org/abs/2109.15099): PaddlePaddle's CPU-friendly
lightweight network, weight-compatible with PaddleClas 2.6's ``PPLCNet_x*``."""
from __future__ import annotations

from typing import Sequence

import paddle
from paddle import nn

from corolla.plugin.errors import ComponentArgumentError
from corolla.plugins.backbones._layers import (
    ConvBN,
    activation,
    make_builder,
    resolve_lr_mult_list,
    resolve_return_stages,
    run_stages,
    weights_table,
    with_features,
)
from corolla.plugins.backbones._mobile import (
    SqueezeExcite,
    exempt_norms_from_decay,
    kaiming_init_conv_bn,
    make_divisible,
    set_lr_mults,
)
from corolla.engine.weights import MODEL_ZOO_URL

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
LR_GROUPS = ("stem", *STAGES)
ACTIVATIONS = ("hardswish", "relu", "relu6")


class PPLCNet(nn.Layer):
    """Stem ``conv1``, five depthwise-separable stages ``blocks2..blocks6``, global pooling,
    an optional wide 1x1 ``last_conv`` (``class_expand`` channels) and the classifier ``fc``.

    ``lr_mult_list`` has 6 values: the stem, then each stage (the head keeps the base rate);
    ``stride_list`` has 5: the stem, then the first block of ``blocks3..blocks6``;
    ``return_stages`` picks stages 0-4 (``blocks2..blocks6``).
    """

    def __init__(
        self,
        *,
        name: str,
        scale: float,
        class_num: int = 1000,
        dropout_prob: float | None = 0.2,
        class_expand: int = 1280,
        use_last_conv: bool = True,
        act: str = "hardswish",
        stride_list: Sequence[int | Sequence[int]] = (2, 2, 2, 2, 2),
        lr_mult_list: Sequence[float] | None = None,
        return_stages: bool | int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.lr_mult_list = resolve_lr_mult_list(name, lr_mult_list, LR_GROUPS)
        strides = _check_stride_list(name, stride_list)
        if act not in ACTIVATIONS:
            raise ComponentArgumentError(f"{name}: act must be one of {', '.join(ACTIVATIONS)}; got {act!r}")
        self._wanted = frozenset(resolve_return_stages(name, return_stages, len(STAGES)))

        self.conv1 = ConvBN(3, make_divisible(16 * scale), 3, stride=strides[0], act=act)
        self._stages = []
        for i, (stage, blocks) in enumerate(STAGES.items()):
            layers = [
                DepthwiseSeparable(
                    make_divisible(in_c * scale), make_divisible(out_c * scale), kernel_size=k,
                    stride=strides[i] if j == 0 and i > 0 else s, use_se=se, act=act,
                )
                for j, (k, in_c, out_c, s, se) in enumerate(blocks)
            ]
            self._stages.append([self.add_sublayer(stage, nn.Sequential(*layers))])

        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        features = make_divisible(STAGES["blocks6"][-1][2] * scale)
        self.last_conv = nn.Conv2D(features, class_expand, 1, bias_attr=False) if use_last_conv else None
        if use_last_conv:
            self.act = activation(act)
            self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer") if dropout_prob else None
            features = class_expand
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = nn.Linear(features, class_num)

        kaiming_init_conv_bn(self)
        exempt_norms_from_decay(self)
        set_lr_mults([[self.conv1], *self._stages], self.lr_mult_list)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | dict[str, paddle.Tensor]:
        features: dict[str, paddle.Tensor] = {}
        x = self.avg_pool(run_stages(self._stages, self.conv1(x), self._wanted, features))
        if self.last_conv is not None:
            x = self.act(self.last_conv(x))
            if self.dropout is not None:
                x = self.dropout(x)
        return with_features(self.fc(self.flatten(x)), features, bool(self._wanted))


def _check_stride_list(name: str, stride_list: Sequence[int | Sequence[int]]) -> list[int | list[int]]:
    """Five strides, each an int or a ``[height, width]`` pair (PaddleClas's PULC text-line
    configs use ``[2, [2, 1], [2, 1], [2, 1], [2, 1]]`` to keep the width)."""

    def is_stride(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0

    if (
        not isinstance(stride_list, (list, tuple))
        or len(stride_list) != len(STAGES)
        or not all(
            is_stride(s) or (isinstance(s, (list, tuple)) and len(s) == 2 and all(map(is_stride, s)))
            for s in stride_list
        )
    ):
        raise ComponentArgumentError(
            f"{name}: stride_list needs {len(STAGES)} positive strides, each an int or a [height, width] pair "
            f"(the stem, then the first block of blocks3..blocks6); got {stride_list!r}"
        )
    return [list(s) if isinstance(s, (list, tuple)) else s for s in stride_list]


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

# --- builders ------------------------------------------------------------------------------------


def _builder(name: str, scale: float):
    summary = (
        f"PP-LCNet at width {scale}. Also: dropout_prob and class_expand (the 1x1 conv after pooling; "
        "use_last_conv=False drops it), act (hardswish, relu or relu6), stride_list (5 strides: stem, "
        "blocks3..blocks6). lr_mult_list groups: stem, blocks2..blocks6; return_stages 0-4."
    )
    return make_builder(name, PPLCNet, WEIGHTS, summary, scale=scale)


PPLCNet_x0_25 = _builder("PPLCNet_x0_25", 0.25)
PPLCNet_x0_35 = _builder("PPLCNet_x0_35", 0.35)
PPLCNet_x0_5 = _builder("PPLCNet_x0_5", 0.5)
PPLCNet_x0_75 = _builder("PPLCNet_x0_75", 0.75)
PPLCNet_x1_0 = _builder("PPLCNet_x1_0", 1.0)
PPLCNet_x1_5 = _builder("PPLCNet_x1_5", 1.5)
PPLCNet_x2_0 = _builder("PPLCNet_x2_0", 2.0)
PPLCNet_x2_5 = _builder("PPLCNet_x2_5", 2.5)
