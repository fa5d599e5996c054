"""What the classic families (DenseNet, HarDNet, PeleeNet, SqueezeNet, Xception,
InceptionV3, DarkNet53, CSPDarkNet53) share beyond :mod:`._layers`: the classifier
initialisation PaddleClas gives several of them, the check of a dropout rate, and the
smallest input at which their BatchNorm statistics are not degenerate."""
from __future__ import annotations

import math

import paddle
from paddle import nn

from corolla.api import ComponentArgumentError

#: The ``MIN_INPUT_SIZE`` of the deep BatchNorm nets without bounded activations (DenseNet,
#: PeleeNet, DarkNet53, CSPDarkNet53). At 32x32 their last stage runs on 1x1 maps, so each
#: BatchNorm there sees only the batch's two values per channel; statistics set from such a
#: batch leave many channels nearly constant, and eval-mode rounding differences grow through
#: them layer by layer (to logits of 1e7 in DarkNet53, overflow in DenseNet264, PaddleClas's
#: own models alike). At 64x64 the last maps are 2x2 and the logits stay of order 1.
STABLE_BATCHNORM_SIZE = 64


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
