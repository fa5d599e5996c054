"""Building blocks and helpers that the backbone families share.

PaddleClas names parameters in two styles, and corolla keeps both so that its
``.pdparams`` load unchanged: the "legendary" models (ResNet, VGG, MobileNetV1/V3,
PP-LCNet) call a conv-BN pair ``conv``/``bn`` (:class:`ConvBN`), the older
"model zoo" ones ``_conv``/``_batch_norm`` (:class:`ZooConvBN`).
"""
from __future__ import annotations

from typing import Any, Callable

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
}


def activation(name: str | None) -> nn.Layer | None:
    """The activation layer called ``name``, or None for no activation."""
    if name is None:
        return None
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None


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

    Takes the keyword arguments of :func:`conv_bn` plus ``act`` (a name of
    :data:`ACTIVATIONS`, or None).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *, act: str | None = None, **conv_args: Any) -> None:
        super().__init__()
        self.conv, self.bn = conv_bn(in_channels, out_channels, kernel_size, **conv_args)
        self.act = activation(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(self.conv(x))
        return x if self.act is None else self.act(x)


class ZooConvBN(nn.Layer):
    """:class:`ConvBN` with parameters ``_conv.weight``, ``_batch_norm.*`` (PaddleClas model_zoo models)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *, act: str | None = None, **conv_args: Any) -> None:
        super().__init__()
        self._conv, self._batch_norm = conv_bn(in_channels, out_channels, kernel_size, **conv_args)
        self.act = activation(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._batch_norm(self._conv(x))
        return x if self.act is None else self.act(x)
