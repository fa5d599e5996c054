"""What the modern families (ConvNeXt, StarNet, FasterNet, DSNet, MobileViT) share for
regularisation and initialisation: stochastic depth, its per-block schedule, the check of
a drop probability, and the weight initialisers PaddleClas applies to a whole net."""
from __future__ import annotations

from typing import Callable

import numpy as np
import paddle
from paddle import nn

from corolla.api import ComponentArgumentError


class DropPath(nn.Layer):
    """Stochastic depth: in training, zero a residual branch for a random ``rate`` of the
    samples and scale the kept ones by ``1 / (1 - rate)``; the identity in eval or at rate 0."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.training or self.rate == 0:
            return x
        keep = 1.0 - self.rate
        shape = [x.shape[0]] + [1] * (x.ndim - 1)
        mask = paddle.floor(keep + paddle.rand(shape, dtype=x.dtype))
        return x / keep * mask

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def drop_path_rates(rate: float, count: int) -> list[float]:
    """The drop-path rate of each of ``count`` blocks: rising linearly from 0 to ``rate``."""
    return [float(r) for r in np.linspace(0.0, rate, count)]


def check_probability(name: str, argument: str, value: float) -> float:
    """``value`` if it is a probability in [0, 1), else an error naming the model and argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ComponentArgumentError(f"{name}: {argument} must be a probability in [0, 1); got {value!r}")
    return float(value)


def init_weights(
    model: nn.Layer,
    *,
    conv: Callable[[paddle.Tensor], None] | None = None,
    linear: Callable[[paddle.Tensor], None] | None = None,
) -> None:
    """Re-initialise the weight of every ``nn.Conv2D`` of ``model`` with ``conv`` and of every
    ``nn.Linear`` with ``linear``, and zero their biases (None keeps Paddle's defaults)."""
    zero = nn.initializer.Constant(0.0)
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, nn.Conv2D) and conv is not None:
            conv(layer.weight)
            if layer.bias is not None:
                zero(layer.bias)
        elif isinstance(layer, nn.Linear) and linear is not None:
            linear(layer.weight)
            if layer.bias is not None:
                zero(layer.bias)


def truncated_normal(std: float = 0.02) -> Callable[[paddle.Tensor], None]:
    """The truncated-normal initialiser PaddleClas's transformer-era nets use (mean 0)."""
    return nn.initializer.TruncatedNormal(mean=0.0, std=std)
