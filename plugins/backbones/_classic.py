"""What the classic families (DenseNet, HarDNet, PeleeNet, SqueezeNet, Xception,
InceptionV3, DarkNet53, CSPDarkNet53) share beyond :mod:`._layers`: the classifier
initialisation PaddleClas gives several of them, and the check of a dropout rate."""
from __future__ import annotations

import math

import paddle
from paddle import nn

from corolla.api import ComponentArgumentError


def uniform_linear(in_features: int, out_features: int) -> nn.Linear:
    """A classifier whose weight starts U(-1/sqrt(in_features), 1/sqrt(in_features)), as
    PaddleClas initialises DenseNet's, Xception's, InceptionV3's and DarkNet53's."""
    bound = 1.0 / math.sqrt(in_features)
    return nn.Linear(
        in_features, out_features, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))
    )


def check_rate(name: str, argument: str, value: float) -> float:
    """``value`` as a probability in [0, 1), else a :class:`ComponentArgumentError` naming the model."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ComponentArgumentError(f"{name}: {argument} must be a number in [0, 1); got {value!r}")
    return float(value)
