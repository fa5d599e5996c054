"""ResNeXt (Xie et al. 2017): ResNet bottlenecks with grouped 3x3 convolutions.

The :class:`ResNeXt` class here is PaddleClas's model_zoo residual network in
general form, with its parameter names: it also builds ResNet50_vc
(``resnet.py``, one group) and the SE_ResNeXt / SENet154 family
(``se_resnext.py``, with squeeze-and-excitation). The ``_vd`` variants use a
deep 3-conv stem and average-pool shortcuts (ResNet-D, He et al. 2019).
"""
from __future__ import annotations

import math
from typing import Sequence

import paddle
from paddle import nn

from corolla.plugins.backbones._layers import (
    ZooConvBN,
    make_builder,
    resolve_lr_mult_list,
    resolve_return_stages,
    run_stages,
    with_features,
)
from corolla.engine.weights import MODEL_ZOO_URL, PretrainedWeights

#: depth -> bottleneck blocks per stage
DEPTHS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
#: output channels of the four stages (every variant)
STAGE_CHANNELS = (256, 512, 1024, 2048)
LR_GROUPS = ("stem", "stage0", "stage1", "stage2", "stage3")


# --- building blocks ---------------------------------------------------------------------


def _uniform_linear(in_features: int, out_features: int, lr_mult: float = 1.0) -> nn.Linear:
    """A Linear initialised U(-1/sqrt(in), 1/sqrt(in)), as PaddleClas initialises these heads."""
    bound = 1.0 / math.sqrt(in_features)
    return nn.Linear(
        in_features,
        out_features,
        weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound), learning_rate=lr_mult),
        bias_attr=paddle.ParamAttr(learning_rate=lr_mult),
    )


class SqueezeExcite(nn.Layer):
    """Channel attention: global pool -> ``squeeze`` -> ReLU -> ``excitation`` -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int, lr_mult: float = 1.0) -> None:
        super().__init__()
        hidden = int(channels / reduction)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.squeeze = _uniform_linear(channels, hidden, lr_mult)
        self.excitation = _uniform_linear(hidden, channels, lr_mult)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self.pool(x).flatten(1)
        gate = nn.functional.sigmoid(self.excitation(nn.functional.relu(self.squeeze(gate))))
        return x * gate.unsqueeze([2, 3])


class Bottleneck(nn.Layer):
    """1x1 -> grouped 3x3 (carries the stride) -> 1x1 [-> SE] plus shortcut, then ReLU.

    The shortcut is the identity, or a 1x1 conv-BN (``short``) where the shape
    changes; with ``avg_down`` a 2x2 average pool does the striding before it.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        out_channels: int,
        *,
        stride: int,
        groups: int,
        project: bool,
        avg_down: bool,
        se_reduction: int | None,
        lr_mult: float,
    ) -> None:
        super().__init__()
        self.conv0 = ZooConvBN(in_channels, width, 1, act="relu", lr_mult=lr_mult)
        self.conv1 = ZooConvBN(width, width, 3, stride=stride, groups=groups, act="relu", lr_mult=lr_mult)
        self.conv2 = ZooConvBN(width, out_channels, 1, lr_mult=lr_mult)
        self.scale = SqueezeExcite(out_channels, se_reduction, lr_mult) if se_reduction else None
        self.short_pool = nn.AvgPool2D(2, stride=2, padding=0, ceil_mode=True) if project and avg_down else None
        self.short = (
            ZooConvBN(in_channels, out_channels, 1, stride=1 if avg_down else stride, lr_mult=lr_mult) if project else None
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.conv2(self.conv1(self.conv0(x)))
        if self.scale is not None:
            y = self.scale(y)
        if self.short is not None:
            x = self.short(x if self.short_pool is None else self.short_pool(x))
        return nn.functional.relu(x + y)


# --- the model --------------------------------------------------------------------------------


class ResNeXt(nn.Layer):
    """PaddleClas's model_zoo residual network: stem, max-pool, four bottleneck stages, classifier.

    ``groups`` x ``group_width`` is the first stage's bottleneck width (doubling
    per stage); ``deep_stem`` gives the three stem convolutions' channels
    (``conv1_1..3``) instead of one 7x7 ``conv``; ``avg_down`` makes the
    shortcuts of stages 1-3 average-pool (the ``_vd`` trick); ``se_reduction``
    adds squeeze-and-excitation. ``lr_mult_list`` has 5 values: stem, stages 0-3;
    ``return_stages`` picks among the 4 stages.
    """

    def __init__(
        self,
        *,
        name: str,
        depth: int,
        groups: int,
        group_width: int,
        deep_stem: Sequence[int] | None,
        avg_down: bool,
        se_reduction: int | None,
        class_num: int = 1000,
        lr_mult_list: Sequence[float] | None = None,
        return_stages: bool | int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.lr_mult_list = resolve_lr_mult_list(name, lr_mult_list, LR_GROUPS)
        self._wanted = frozenset(resolve_return_stages(name, return_stages, len(STAGE_CHANNELS)))
        stem_lr = self.lr_mult_list[0]
        if deep_stem:
            c1, c2, c3 = deep_stem
            self.conv1_1 = ZooConvBN(3, c1, 3, stride=2, act="relu", lr_mult=stem_lr)
            self.conv1_2 = ZooConvBN(c1, c2, 3, act="relu", lr_mult=stem_lr)
            self.conv1_3 = ZooConvBN(c2, c3, 3, act="relu", lr_mult=stem_lr)
            self._stem = [self.conv1_1, self.conv1_2, self.conv1_3]
            channels = c3
        else:
            self.conv = ZooConvBN(3, 64, 7, stride=2, act="relu", lr_mult=stem_lr)
            self._stem = [self.conv]
            channels = 64
        self.pool2d_max = nn.MaxPool2D(3, stride=2, padding=1)

        self._stages: list[list[Bottleneck]] = []
        for stage, (count, out_channels) in enumerate(zip(DEPTHS[depth], STAGE_CHANNELS)):
            blocks = []
            for i in range(count):
                block = Bottleneck(
                    channels,
                    groups * group_width * 2**stage,
                    out_channels,
                    stride=2 if i == 0 and stage > 0 else 1,
                    groups=groups,
                    project=i == 0,
                    avg_down=avg_down and stage > 0,
                    se_reduction=se_reduction,
                    lr_mult=self.lr_mult_list[stage + 1],
                )
                blocks.append(self.add_sublayer(f"bb_{stage}_{i}", block))
                channels = out_channels
            self._stages.append(blocks)
        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.out = _uniform_linear(channels, class_num)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | dict[str, paddle.Tensor]:
        for layer in self._stem:
            x = layer(x)
        features: dict[str, paddle.Tensor] = {}
        x = run_stages(self._stages, self.pool2d_max(x), self._wanted, features)
        logits = self.out(self.pool2d_avg(x).flatten(1))
        return with_features(logits, features, bool(self._wanted))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS: dict[str, PretrainedWeights] = {
    "ResNeXt50_32x4d": PretrainedWeights(MODEL_ZOO_URL + "ResNeXt50_32x4d_pretrained.pdparams", 0.7775),
    "ResNeXt101_64x4d": PretrainedWeights(MODEL_ZOO_URL + "ResNeXt101_64x4d_pretrained.pdparams", 0.7835),
    "ResNeXt101_vd_64x4d": PretrainedWeights(MODEL_ZOO_URL + "ResNeXt101_vd_64x4d_pretrained.pdparams", 0.8078),
}


# --- builders ---------------------------------------------------------------------------------


_GROUPS_DOC = "\n\n  lr_mult_list: 5 values: stem, stage0-stage3."

ResNeXt50_32x4d = make_builder(
    "ResNeXt50_32x4d",
    ResNeXt,
    WEIGHTS,
    "ResNeXt-50, 32 groups of width 4." + _GROUPS_DOC,
    depth=50,
    groups=32,
    group_width=4,
    deep_stem=None,
    avg_down=False,
    se_reduction=None,
)
ResNeXt101_64x4d = make_builder(
    "ResNeXt101_64x4d",
    ResNeXt,
    WEIGHTS,
    "ResNeXt-101, 64 groups of width 4." + _GROUPS_DOC,
    depth=101,
    groups=64,
    group_width=4,
    deep_stem=None,
    avg_down=False,
    se_reduction=None,
)
ResNeXt101_vd_64x4d = make_builder(
    "ResNeXt101_vd_64x4d",
    ResNeXt,
    WEIGHTS,
    "ResNeXt-101 64x4d with a deep stem and average-pool shortcuts (vd)." + _GROUPS_DOC,
    depth=101,
    groups=64,
    group_width=4,
    deep_stem=(32, 32, 64),
    avg_down=True,
    se_reduction=None,
)
