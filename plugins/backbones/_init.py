"""How the backbone families start their weights: the initialisations PaddleClas gives them,
so that a model trained from scratch starts from the same distributions.

Each function re-initialises in the order of ``model.sublayers()``, drawing from Paddle's
global generator; keep that order (and the number of draws) when changing one, or a seeded
model no longer starts where it did.
"""
from __future__ import annotations

import math
from typing import Callable

import paddle
from paddle import nn
from paddle.nn.initializer import Constant, KaimingNormal, Normal, TruncatedNormal, Uniform, XavierUniform
from paddle.regularizer import L2Decay

from corolla.plugins.backbones._layers import ConvBN, ZooConvBN

#: an initialiser, called on a parameter (Paddle's ``nn.initializer`` objects are)
Initializer = Callable[[paddle.Tensor], None]

#: the standard deviation of PaddleClas's truncated-normal transformer weights and tokens
INIT_STD = 0.02
TRUNC_NORMAL = TruncatedNormal(std=INIT_STD)
ZEROS = Constant(0.0)
ONES = Constant(1.0)


def truncated_normal(std: float = INIT_STD) -> Initializer:
    """A truncated-normal initialiser of mean 0 and ``std``."""
    return TruncatedNormal(mean=0.0, std=std)


# --- layers and parameters created initialised ---------------------------------------------


def uniform_linear(in_features: int, out_features: int) -> nn.Linear:
    """A Linear whose weight starts U(-1/sqrt(in_features), 1/sqrt(in_features)): the classifier
    (and SE layers) of PaddleClas's model-zoo nets."""
    bound = 1.0 / math.sqrt(in_features)
    return nn.Linear(in_features, out_features, weight_attr=paddle.ParamAttr(initializer=Uniform(-bound, bound)))


def trunc_normal_parameter(layer: nn.Layer, shape: list[int], *, decay: bool = True) -> paddle.Tensor:
    """A new parameter of ``layer``, truncated-normal (std 0.02); ``decay=False`` keeps
    weight decay off it (position embeddings, class tokens)."""
    attr = paddle.ParamAttr(initializer=TRUNC_NORMAL, regularizer=None if decay else L2Decay(0.0))
    return layer.create_parameter(shape, attr=attr)


def constant_parameter(layer: nn.Layer, shape: list[int], value: float, *, decay: bool = True) -> paddle.Tensor:
    """A new parameter of ``layer`` filled with ``value``; ``decay=False`` keeps weight decay off it."""
    attr = paddle.ParamAttr(initializer=Constant(value), regularizer=None if decay else L2Decay(0.0))
    return layer.create_parameter(shape, attr=attr)


# --- whole-model initialisations -----------------------------------------------------------


def init_weights(
    model: nn.Layer,
    *,
    conv: Initializer | None = None,
    linear: Initializer | None = None,
) -> None:
    """Re-initialise the weight of every ``nn.Conv2D`` of ``model`` with ``conv`` and of every
    ``nn.Linear`` with ``linear``, and zero their biases (None leaves that kind as it is)."""
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, nn.Conv2D) and conv is not None:
            conv(layer.weight)
        elif isinstance(layer, nn.Linear) and linear is not None:
            linear(layer.weight)
        else:
            continue
        if layer.bias is not None:
            ZEROS(layer.bias)


def init_transformer_weights(model: nn.Layer, linear_types: tuple[type, ...] = (nn.Linear,)) -> None:
    """PaddleClas's transformer initialisation: every Linear (of ``linear_types``) gets a
    truncated-normal weight (std 0.02) and a zero bias, every LayerNorm weight 1 and bias 0."""
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, linear_types):
            TRUNC_NORMAL(layer.weight)
            if layer.bias is not None:
                ZEROS(layer.bias)
        elif isinstance(layer, nn.LayerNorm):
            ONES(layer.weight)
            ZEROS(layer.bias)


def init_convs_fan_out(
    model: nn.Layer, *, per_group: bool, zero_bias: bool, linear_std: float | None = None
) -> None:
    """He initialisation by fan-out: every ``nn.Conv2D`` weight normal with std
    sqrt(2 / fan-out), the fan-out being kernel area x output channels, divided by the groups
    where ``per_group`` (VAN, Twins; DLA, MicroNet, MobileNeXt and PeleeNet do not divide);
    its bias zeroed where ``zero_bias``. With ``linear_std``, every ``nn.Linear`` weight
    normal with that std."""
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, nn.Conv2D):
            out_channels, _, kernel_h, kernel_w = layer.weight.shape
            fan_out = kernel_h * kernel_w * out_channels
            if per_group:
                fan_out //= layer._groups
            Normal(0.0, math.sqrt(2.0 / fan_out))(layer.weight)
            if zero_bias and layer.bias is not None:
                ZEROS(layer.bias)
        elif isinstance(layer, nn.Linear) and linear_std is not None:
            Normal(0.0, linear_std)(layer.weight)


def kaiming_init_convs(model: nn.Layer) -> None:
    """Re-initialise the weight of every ``nn.Conv2D`` of ``model`` Kaiming-normal (fan-in per
    group), as PaddleClas does for all convolutions of PP-HGNet/V2."""
    init = KaimingNormal()
    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            init(layer.weight)


def kaiming_init_conv_bn(model: nn.Layer) -> None:
    """Re-initialise the convolution of every conv-BN pair Kaiming-normal (fan-in per group),
    as PaddleClas declares them in MobileNetV1, PP-LCNet, ShuffleNetV2, ESNet and GhostNet;
    Paddle's default ignores ``groups``, which starts depthwise convolutions far too small."""
    init = KaimingNormal()
    for layer in model.sublayers():
        if isinstance(layer, ConvBN):
            init(layer.conv.weight)
        elif isinstance(layer, ZooConvBN):
            init(layer._conv.weight)


def init_like_cvnets(model: nn.Layer) -> None:
    """MobileViTV2's initialisation (Apple's ml-cvnets, kept by PaddleClas): every convolution's
    weight and bias uniform in +-1/sqrt(fan in), linear weights Xavier-uniform with zero bias."""
    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            kernel = layer.weight.shape
            bound = (kernel[1] * kernel[2] * kernel[3]) ** -0.5
            Uniform(-bound, bound)(layer.weight)
            if layer.bias is not None:
                Uniform(-bound, bound)(layer.bias)
        elif isinstance(layer, nn.Linear):
            XavierUniform()(layer.weight)
            ZEROS(layer.bias)
