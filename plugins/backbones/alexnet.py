"""AlexNet (Krizhevsky et al. 2012), single-tower, as PaddleClas 2.6 builds it (model_zoo/alexnet.py).

The classifier flattens a 6x6 map, so the input must be 224x224 (up to 250).
"""
from __future__ import annotations

import math
from typing import Sequence

import paddle
from paddle import nn

from corolla.plugins.backbones._layers import (
    make_builder,
    resolve_lr_mult_list,
    resolve_return_stages,
    run_stages,
    with_features,
)
from corolla.engine.weights import MODEL_ZOO_URL, PretrainedWeights

LR_GROUPS = ("stage0", "stage1", "stage2")


# --- building blocks ---------------------------------------------------------------------


def _uniform_attr(fan_in: int, lr_mult: float = 1.0) -> paddle.ParamAttr:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PaddleClas's initialisation for every AlexNet weight and bias."""
    bound = 1.0 / math.sqrt(fan_in)
    return paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound), learning_rate=lr_mult)


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, lr_mult: float) -> nn.Conv2D:
    fan_in = in_channels * kernel_size**2
    return nn.Conv2D(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        weight_attr=_uniform_attr(fan_in, lr_mult),
        bias_attr=_uniform_attr(fan_in, lr_mult),
    )


class ConvPool(nn.Layer):
    """Convolution (``_conv``) -> ReLU -> 3x3 stride-2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, lr_mult: float) -> None:
        super().__init__()
        self._conv = _conv(in_channels, out_channels, kernel_size, stride, padding, lr_mult)
        self._pool = nn.MaxPool2D(3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._pool(nn.functional.relu(self._conv(x)))


# --- the model --------------------------------------------------------------------------------


class AlexNetModel(nn.Layer):
    """Five convolutions in 3 stages (``_conv1``; ``_conv2``; ``_conv3..5``, the
    ``lr_mult_list`` groups), then ``_fc6``, ``_fc7`` (each after dropout 0.5) and ``_fc8``."""

    def __init__(
        self,
        *,
        name: str = "AlexNet",
        class_num: int = 1000,
        lr_mult_list: Sequence[float] | None = None,
        return_stages: bool | int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.lr_mult_list = resolve_lr_mult_list(name, lr_mult_list, LR_GROUPS)
        self._wanted = frozenset(resolve_return_stages(name, return_stages, len(LR_GROUPS)))
        lr = self.lr_mult_list
        self._conv1 = ConvPool(3, 64, 11, 4, 2, lr[0])
        self._conv2 = ConvPool(64, 192, 5, 1, 2, lr[1])
        self._conv3 = _conv(192, 384, 3, 1, 1, lr[2])
        self._conv4 = _conv(384, 256, 3, 1, 1, lr[2])
        self._conv5 = ConvPool(256, 256, 3, 1, 1, lr[2])
        self._stages = [[self._conv1], [self._conv2], [self._conv3, nn.ReLU(), self._conv4, nn.ReLU(), self._conv5]]
        self._drop1 = nn.Dropout(p=0.5, mode="downscale_in_infer")
        self._drop2 = nn.Dropout(p=0.5, mode="downscale_in_infer")
        flat = 256 * 6 * 6
        self._fc6 = nn.Linear(flat, 4096, weight_attr=_uniform_attr(flat), bias_attr=_uniform_attr(flat))
        self._fc7 = nn.Linear(4096, 4096, weight_attr=_uniform_attr(flat), bias_attr=_uniform_attr(flat))
        self._fc8 = nn.Linear(4096, class_num, weight_attr=_uniform_attr(flat), bias_attr=_uniform_attr(flat))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | dict[str, paddle.Tensor]:
        features: dict[str, paddle.Tensor] = {}
        x = run_stages(self._stages, x, self._wanted, features).flatten(1)
        x = nn.functional.relu(self._fc6(self._drop1(x)))
        x = nn.functional.relu(self._fc7(self._drop2(x)))
        return with_features(self._fc8(x), features, bool(self._wanted))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS: dict[str, PretrainedWeights] = {
    "AlexNet": PretrainedWeights(MODEL_ZOO_URL + "AlexNet_pretrained.pdparams", 0.567),
}


# --- builders ---------------------------------------------------------------------------------


AlexNet = make_builder(
    "AlexNet",
    AlexNetModel,
    WEIGHTS,
    "AlexNet (224x224 input).\n\n  lr_mult_list: 3 values: stage0 (conv1), stage1 (conv2), stage2 (conv3-5).",
)
