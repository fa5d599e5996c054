"""Building blocks the backbone families share: activations by name, BatchNorm, conv-BN(-act)
units, the pre-activation BN-ReLU-conv unit, the hard-sigmoid squeeze-excitation gate, the
widening classifier head of the PP families, channel rounding and channel shuffling.

PaddleClas names parameters in two styles, and corolla keeps both so that its
``.pdparams`` load unchanged: the "legendary" models (ResNet, VGG, MobileNetV1/V3,
PP-LCNet) call a conv-BN pair ``conv``/``bn`` (:class:`ConvBN`), the older
"model zoo" ones ``_conv``/``_batch_norm`` (:class:`ZooConvBN`).
"""
from __future__ import annotations

from typing import Any, Callable, Union

import paddle
from paddle import nn

#: activation name (as PaddleClas spells it) -> layer
ACTIVATIONS: dict[str, Callable[[], nn.Layer]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "swish": nn.Swish,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}

#: an activation: a name of :data:`ACTIVATIONS`, a function making the layer, or None for none
Activation = Union[str, Callable[[], nn.Layer], None]


def activation(act: Activation) -> nn.Layer | None:
    """The activation layer ``act`` stands for (a name of :data:`ACTIVATIONS` or a function
    making the layer), or None for no activation."""
    if act is None:
        return None
    if callable(act):
        return act()
    try:
        return ACTIVATIONS[act]()
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; known: {', '.join(ACTIVATIONS)}") from None


class LeanBatchNorm2D(nn.BatchNorm2D):
    """``nn.BatchNorm2D`` (same parameters, same maths, its ``data_format``), minus the
    per-call format checks and the training warning that Paddle 3.3 repeats on every
    call: about 2-3 us less per call (measured), what PaddleClas's older
    ``nn.BatchNorm`` also saves, and enough to show on small nets."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.batch_norm(
            x,
            self._mean,
            self._variance,
            weight=self.weight,
            bias=self.bias,
            training=self.training,
            momentum=self._momentum,
            epsilon=self._epsilon,
            data_format=self._data_format,
            use_global_stats=self._use_global_stats,
        )


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    *,
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
    groups: int = 1,
    lr_mult: float = 1.0,
    data_format: str = "NCHW",
) -> tuple[nn.Conv2D, LeanBatchNorm2D]:
    """A bias-free convolution and its BatchNorm, both with learning-rate multiplier ``lr_mult``,
    for ``data_format`` ("NCHW" or "NHWC") input.

    ``padding`` defaults to ``(kernel_size - 1) // 2`` (same size at stride 1).
    """
    if padding is None:
        padding = (kernel_size - 1) // 2 if isinstance(kernel_size, int) else tuple((k - 1) // 2 for k in kernel_size)
    conv = nn.Conv2D(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        groups=groups,
        weight_attr=paddle.ParamAttr(learning_rate=lr_mult),
        bias_attr=False,
        data_format=data_format,
    )
    norm = LeanBatchNorm2D(
        out_channels,
        weight_attr=paddle.ParamAttr(learning_rate=lr_mult),
        bias_attr=paddle.ParamAttr(learning_rate=lr_mult),
        data_format=data_format,
    )
    return conv, norm


class ConvBN(nn.Layer):
    """conv -> BN -> activation; parameters ``conv.weight``, ``bn.*`` (PaddleClas legendary models).

    Takes the keyword arguments of :func:`conv_bn` plus ``act`` (see :data:`Activation`).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *, act: Activation = None,
        **conv_args: Any,
    ) -> None:
        super().__init__()
        self.conv, self.bn = conv_bn(in_channels, out_channels, kernel_size, **conv_args)
        self.act = activation(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(self.conv(x))
        return x if self.act is None else self.act(x)


class ZooConvBN(nn.Layer):
    """:class:`ConvBN` with parameters ``_conv.weight``, ``_batch_norm.*`` (PaddleClas model_zoo models)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *, act: Activation = None,
        **conv_args: Any,
    ) -> None:
        super().__init__()
        self._conv, self._batch_norm = conv_bn(in_channels, out_channels, kernel_size, **conv_args)
        self.act = activation(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._batch_norm(self._conv(x))
        return x if self.act is None else self.act(x)


class NormReLUConv(nn.Layer):
    """The pre-activation unit: BatchNorm (``_batch_norm``), ReLU, then a bias-free convolution
    (``_conv``) keeping the size at stride 1 (DenseNet, DPN)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self._batch_norm = LeanBatchNorm2D(in_channels)
        self._conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, groups=groups,
            bias_attr=False,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._conv(nn.functional.relu(self._batch_norm(x)))


class SqueezeExcite(nn.Layer):
    """Channel attention: pooled features -> 1x1 conv -> ReLU -> 1x1 conv -> hard-sigmoid gate.

    ``gate_slope`` is 0.2 in MobileNetV3 and Paddle's default 0.1666667 in PP-LCNet and ESNet
    (the hard-sigmoid offset is 0.5 in all).
    """

    def __init__(self, channels: int, *, gate_slope: float, reduction: int = 4) -> None:
        super().__init__()
        self.gate_slope = gate_slope
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self.conv2(self.relu(self.conv1(self.avg_pool(x))))
        return x * nn.functional.hardsigmoid(gate, slope=self.gate_slope, offset=0.5)


class LastConvHead:
    """Mixin for a :class:`~._base.Backbone`: the classifier head of PaddleClas's PP-LCNet/V2
    and PP-HGNet/V2. Global average pooling (``avg_pool``), a bias-free 1x1 conv widening the
    features to ``class_expand`` channels (``last_conv``) with an activation (``act``; then
    ``lab``, where given) and dropout (``dropout``, PaddleClas's ``downscale_in_infer``; none
    at rate 0 or None), then ``flatten`` and the classifier ``fc``. Without ``use_last_conv``
    the features go straight to ``fc``.
    """

    def add_head(
        self,
        features: int,
        *,
        use_last_conv: bool,
        class_expand: int,
        act: Activation,
        dropout_prob: float | None,
        lab: Callable[[], nn.Layer] | None = None,
    ) -> None:
        """Create the head's layers (in the order of PaddleClas's state dict) on ``features`` channels."""
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.last_conv = nn.Conv2D(features, class_expand, 1, bias_attr=False) if use_last_conv else None
        if use_last_conv:
            self.act = activation(act)
            self.lab = lab() if lab else None
            self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer") if dropout_prob else None
            features = class_expand
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = nn.Linear(features, self.class_num)

    def head(self, x: paddle.Tensor) -> paddle.Tensor:
        """The logits of the last stage's features ``x``."""
        x = self.avg_pool(x)
        if self.last_conv is not None:
            x = self.act(self.last_conv(x))
            if self.lab is not None:
                x = self.lab(x)
            if self.dropout is not None:
                x = self.dropout(x)
        return self.fc(self.flatten(x))


# --- channels ------------------------------------------------------------------------------


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` (at least ``min_value``, default
    ``divisor``), never more than 10% below ``value``."""
    rounded = max(min_value or divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def channel_shuffle(x: paddle.Tensor, groups: int) -> paddle.Tensor:
    """Interleave the channels of ``groups`` equal groups (ShuffleNet's channel shuffle)."""
    batch, channels, height, width = x.shape
    x = x.reshape([batch, groups, channels // groups, height, width])
    return x.transpose([0, 2, 1, 3, 4]).reshape([batch, channels, height, width])
