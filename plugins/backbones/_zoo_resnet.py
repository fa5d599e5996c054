"""PaddleClas's model_zoo residual network in general form, with its parameter names.

One class, :class:`ResNeXt`, builds every model_zoo member of the ResNet family:
ResNet50_vc (``resnet.py``), ResNeXt and ResNeXt_vd (``resnext.py``), SE-ResNet_vd,
SE-ResNeXt and SENet154 (``se_resnext.py``). Its conv-BN pairs are called
``_conv``/``_batch_norm`` (:class:`ZooConvBN`), its blocks ``bb_<stage>_<index>``.
"""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from corolla.plugins.backbones._base import Backbone
from corolla.plugins.backbones._checks import check_choice, check_positive_int
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import ZooConvBN

#: depth -> blocks per stage; 18 and 34 use basic blocks, the others bottlenecks
DEPTHS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
BASIC_DEPTHS = (18, 34)
#: output channels of the first bottleneck stage (doubling per stage, every variant)
BOTTLENECK_CHANNELS = 256
DATA_FORMATS = ("NCHW", "NHWC")


# --- building blocks ---------------------------------------------------------------------


class SqueezeExcite(nn.Layer):
    """Channel attention: global pool -> ``squeeze`` -> ReLU -> ``excitation`` -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int, data_format: str) -> None:
        super().__init__()
        self.spatial_axes = [2, 3] if data_format == "NCHW" else [1, 2]
        self.pool = nn.AdaptiveAvgPool2D(1, data_format=data_format)
        self.squeeze = uniform_linear(channels, int(channels / reduction))
        self.excitation = uniform_linear(int(channels / reduction), channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self.pool(x).flatten(1)
        gate = nn.functional.sigmoid(self.excitation(nn.functional.relu(self.squeeze(gate))))
        return x * gate.unsqueeze(self.spatial_axes)


class _Residual(nn.Layer):
    """What both block types share: the optional SE gate (``scale``), the shortcut
    (``short``, a 1x1 conv-BN where ``project``; with ``avg_down`` a 2x2 average pool does
    its striding) and the closing ReLU."""

    def _add_gate_and_shortcut(
        self, in_channels: int, out_channels: int, *, stride: int, project: bool, avg_down: bool,
        se_reduction: int | None, data_format: str,
    ) -> None:
        self.scale = SqueezeExcite(out_channels, se_reduction, data_format) if se_reduction else None
        self.short_pool = (
            nn.AvgPool2D(2, stride=2, padding=0, ceil_mode=True, data_format=data_format)
            if project and avg_down
            else None
        )
        self.short = (
            ZooConvBN(in_channels, out_channels, 1, stride=1 if avg_down else stride, data_format=data_format)
            if project
            else None
        )

    def _merge(self, x: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
        if self.scale is not None:
            y = self.scale(y)
        if self.short is not None:
            x = self.short(x if self.short_pool is None else self.short_pool(x))
        return nn.functional.relu(x + y)


class BasicBlock(_Residual):
    """Two 3x3 conv-BNs (the first carries the stride) [-> SE] plus shortcut (depths 18 and 34)."""

    def __init__(self, in_channels: int, width: int, *, stride: int, data_format: str, **shortcut: Any) -> None:
        super().__init__()
        self.conv0 = ZooConvBN(in_channels, width, 3, stride=stride, act="relu", data_format=data_format)
        self.conv1 = ZooConvBN(width, width, 3, data_format=data_format)
        self._add_gate_and_shortcut(in_channels, width, stride=stride, data_format=data_format, **shortcut)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._merge(x, self.conv1(self.conv0(x)))


class Bottleneck(_Residual):
    """1x1 -> grouped 3x3 (carries the stride) -> 1x1 [-> SE] plus shortcut."""

    def __init__(
        self, in_channels: int, width: int, out_channels: int, *, stride: int, groups: int, data_format: str,
        **shortcut: Any,
    ) -> None:
        super().__init__()
        unit = {"data_format": data_format}
        self.conv0 = ZooConvBN(in_channels, width, 1, act="relu", **unit)
        self.conv1 = ZooConvBN(width, width, 3, stride=stride, groups=groups, act="relu", **unit)
        self.conv2 = ZooConvBN(width, out_channels, 1, **unit)
        self._add_gate_and_shortcut(in_channels, out_channels, stride=stride, **unit, **shortcut)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._merge(x, self.conv2(self.conv1(self.conv0(x))))


# --- the model --------------------------------------------------------------------------------


class ResNeXt(Backbone):
    """PaddleClas's model_zoo residual network: stem, max-pool, four stages, classifier ``out``.

    ``depth`` 18 or 34 gives basic blocks of ``group_width`` channels (``groups`` 1); 50, 101
    or 152 bottlenecks whose grouped 3x3 is ``groups`` x ``group_width`` wide, both doubling
    per stage. ``deep_stem`` gives the three stem convolutions' channels (``conv1_1..3``)
    instead of one 7x7 ``conv``; ``avg_down`` makes the shortcuts of stages 1-3 average-pool
    (the ``_vd`` trick); ``se_reduction`` adds squeeze-and-excitation.
    ``input_image_channel``: channels of the input images; ``data_format``: "NCHW", or
    "NHWC" to run every layer channels-last (the input is still given NCHW; the stage
    outputs are then NHWC).
    ``lr_mult_list`` has 5 values: stem, stage0-stage3; ``return_stages`` picks among the 4 stages.
    """

    def __init__(
        self,
        *,
        depth: int,
        groups: int,
        group_width: int,
        deep_stem: Sequence[int] | None,
        avg_down: bool,
        se_reduction: int | None,
        input_image_channel: int = 3,
        data_format: str = "NCHW",
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        check_choice(name, "data_format", data_format, DATA_FORMATS)
        check_positive_int(name, "input_image_channel", input_image_channel)
        self.data_format = data_format
        unit = {"data_format": data_format}

        if deep_stem:
            c1, c2, c3 = deep_stem
            self.conv1_1 = ZooConvBN(input_image_channel, c1, 3, stride=2, act="relu", **unit)
            self.conv1_2 = ZooConvBN(c1, c2, 3, act="relu", **unit)
            self.conv1_3 = ZooConvBN(c2, c3, 3, act="relu", **unit)
            self._stem = [self.conv1_1, self.conv1_2, self.conv1_3]
            channels = c3
        else:
            self.conv = ZooConvBN(input_image_channel, 64, 7, stride=2, act="relu", **unit)
            self._stem = [self.conv]
            channels = 64
        self.pool2d_max = nn.MaxPool2D(3, stride=2, padding=1, **unit)

        self._stages: list[list[nn.Layer]] = []
        for stage, count in enumerate(DEPTHS[depth]):
            blocks = []
            for i in range(count):
                options = dict(
                    stride=2 if i == 0 and stage > 0 else 1,
                    project=i == 0,
                    avg_down=avg_down and stage > 0,
                    se_reduction=se_reduction,
                    **unit,
                )
                if depth in BASIC_DEPTHS:
                    out_channels = group_width * 2**stage
                    block = BasicBlock(channels, out_channels, **options)
                else:
                    out_channels = BOTTLENECK_CHANNELS * 2**stage
                    block = Bottleneck(channels, groups * group_width * 2**stage, out_channels, groups=groups, **options)
                blocks.append(self.add_sublayer(f"bb_{stage}_{i}", block))
                channels = out_channels
            self._stages.append(blocks)
        self.pool2d_avg = nn.AdaptiveAvgPool2D(1, **unit)
        self.out = uniform_linear(channels, self.class_num)

        self.finish(
            lr_groups={"stem": self._stem, **{f"stage{i}": blocks for i, blocks in enumerate(self._stages)}},
            stages=[blocks[-1] for blocks in self._stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.data_format == "NHWC":
            x = x.transpose([0, 2, 3, 1])
        for layer in self._stem:
            x = layer(x)
        x = self.pool2d_max(x)
        for blocks in self._stages:
            for block in blocks:
                x = block(x)
        return self.out(self.pool2d_avg(x).flatten(1))
