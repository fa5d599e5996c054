"""AlexNet (Krizhevsky et al. 2012), single-tower, as PaddleClas 2.6 builds it (model_zoo/alexnet.py).

The classifier flattens a 6x6 map, so the input must be 224x224 (up to 250).
"""
from __future__ import annotations

import math
from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders

MIN_INPUT_SIZE = 224


# --- building blocks ---------------------------------------------------------------------


def _uniform_attr(fan_in: int) -> paddle.ParamAttr:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PaddleClas's initialisation for every AlexNet weight and bias."""
    bound = 1.0 / math.sqrt(fan_in)
    return paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Conv2D:
    fan_in = in_channels * kernel_size**2
    return nn.Conv2D(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        weight_attr=_uniform_attr(fan_in),
        bias_attr=_uniform_attr(fan_in),
    )


class ConvPool(nn.Layer):
    """Convolution (``_conv``) -> ReLU -> 3x3 stride-2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self._conv = _conv(in_channels, out_channels, kernel_size, stride, padding)
        self._pool = nn.MaxPool2D(3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._pool(nn.functional.relu(self._conv(x)))


# --- the model --------------------------------------------------------------------------------


class AlexNet(Backbone):
    """Five convolutions in 3 stages (``_conv1``; ``_conv2``; ``_conv3..5``, the
    ``lr_mult_list`` groups), then ``_fc6``, ``_fc7`` (each after dropout 0.5) and ``_fc8``."""

    def __init__(self, **contract: Any) -> None:
        super().__init__(**contract)
        self._conv1 = ConvPool(3, 64, 11, 4, 2)
        self._conv2 = ConvPool(64, 192, 5, 1, 2)
        self._conv3 = _conv(192, 384, 3, 1, 1)
        self._conv4 = _conv(384, 256, 3, 1, 1)
        self._conv5 = ConvPool(256, 256, 3, 1, 1)
        self._drop1 = nn.Dropout(p=0.5, mode="downscale_in_infer")
        self._drop2 = nn.Dropout(p=0.5, mode="downscale_in_infer")
        flat = 256 * 6 * 6
        self._fc6 = nn.Linear(flat, 4096, weight_attr=_uniform_attr(flat), bias_attr=_uniform_attr(flat))
        self._fc7 = nn.Linear(4096, 4096, weight_attr=_uniform_attr(flat), bias_attr=_uniform_attr(flat))
        self._fc8 = nn.Linear(4096, self.class_num, weight_attr=_uniform_attr(flat), bias_attr=_uniform_attr(flat))
        self.finish(
            lr_groups={"stage0": [self._conv1], "stage1": [self._conv2], "stage2": [self._conv3, self._conv4, self._conv5]},
            stages=[self._conv1, self._conv2, self._conv5],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._conv2(self._conv1(x))
        x = self._conv5(nn.functional.relu(self._conv4(nn.functional.relu(self._conv3(x))))).flatten(1)
        x = nn.functional.relu(self._fc6(self._drop1(x)))
        x = nn.functional.relu(self._fc7(self._drop2(x)))
        return self._fc8(x)


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"AlexNet": 0.567})

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "AlexNet": dict(),
}

BUILDERS = builders(AlexNet, VARIANTS, WEIGHTS)
