"""Pieces the hybrid convolution/attention families (PVT_V2, Twins, VAN, UniFormer, TNT,
NextViT, LeViT) share beyond :mod:`._transformer`: attention with explicit heads (and
spatial reduction), tokens to maps and back as stage outputs, PaddleClas's other
initialisations, and argument checks."""
from __future__ import annotations

import math

import paddle
from paddle import nn
from paddle.nn.initializer import Constant, Normal, TruncatedNormal
from paddle.regularizer import L2Decay

from corolla.api import ComponentArgumentError
from corolla.plugins.backbones._transformer import tokens_to_map

#: the standard deviation PaddleClas's transformers initialise their weights with
INIT_STD = 0.02


# --- attention --------------------------------------------------------------------------------


def split_heads(x: paddle.Tensor, num_heads: int) -> paddle.Tensor:
    """``[batch, tokens, heads * width]`` -> ``[batch, heads, tokens, width]``."""
    batch, tokens, channels = x.shape
    return x.reshape([batch, tokens, num_heads, channels // num_heads]).transpose([0, 2, 1, 3])


def merge_heads(x: paddle.Tensor) -> paddle.Tensor:
    """``[batch, heads, tokens, width]`` -> ``[batch, tokens, heads * width]``."""
    batch, heads, tokens, width = x.shape
    return x.transpose([0, 2, 1, 3]).reshape([batch, tokens, heads * width])


def attend(
    q: paddle.Tensor,
    k: paddle.Tensor,
    v: paddle.Tensor,
    scale: float,
    dropout: nn.Layer | None = None,
    bias: paddle.Tensor | None = None,
) -> paddle.Tensor:
    """Scaled dot-product attention of ``[batch, heads, tokens, width]`` queries, keys and values,
    with an optional additive bias and dropout on the attention weights."""
    # an explicit transpose, not matmul's transpose_y, keeps the results bit-identical to
    # PaddleClas's: LeViT's parity check fits its classifier's BatchNorm on one image, which
    # leaves nothing but rounding differences in the logits
    scores = paddle.matmul(q, k.transpose([0, 1, 3, 2])) * scale
    if bias is not None:
        scores = scores + bias
    weights = nn.functional.softmax(scores, axis=-1)
    return paddle.matmul(weights if dropout is None else dropout(weights), v)


def linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """``nn.Linear``, with or without a bias."""
    return nn.Linear(in_features, out_features, bias_attr=None if bias else False)


class SpatialReductionAttention(nn.Layer):
    """Multi-head attention whose keys and values come from a smaller map (PVT, Twins' global
    sub-sampled attention): queries ``q`` from every token, keys and values ``kv`` from the
    map reduced by a ``sr_ratio`` x ``sr_ratio`` strided conv ``sr`` and LayerNorm ``norm``,
    or, with ``linear`` (PVTv2-Li), pooled to 7x7 then a 1x1 conv, LayerNorm and GELU."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool,
        sr_ratio: int,
        linear_reduction: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = linear(dim, dim, qkv_bias)
        self.kv = linear(dim, dim * 2, qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.pool = self.sr = self.norm = self.act = None
        if linear_reduction:
            self.pool = nn.AdaptiveAvgPool2D(7)
            self.sr = nn.Conv2D(dim, dim, 1)
            self.norm = nn.LayerNorm(dim)
            self.act = nn.GELU()
        elif sr_ratio > 1:
            self.sr = nn.Conv2D(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        batch, tokens, dim = x.shape
        q = split_heads(self.q(x), self.num_heads)
        source = x
        if self.sr is not None:
            reduced = tokens_to_map(x, height, width)
            if self.pool is not None:
                reduced = self.pool(reduced)
            source = self.norm(map_to_tokens(self.sr(reduced)))
            if self.act is not None:
                source = self.act(source)
        kv = self.kv(source).reshape([batch, -1, 2, self.num_heads, dim // self.num_heads]).transpose([2, 0, 3, 1, 4])
        out = attend(q, kv[0], kv[1], self.scale, self.attn_drop)
        return self.proj_drop(self.proj(merge_heads(out)))


# --- tokens and maps --------------------------------------------------------------------------


def map_to_tokens(x: paddle.Tensor) -> paddle.Tensor:
    """``[batch, channels, height, width]`` -> ``[batch, height * width, channels]``."""
    return x.flatten(2).transpose([0, 2, 1])


class TokensToMap(nn.Layer):
    """:func:`tokens_to_map` as a layer, so that a stage's feature map is a layer output
    (what ``return_stages`` collects)."""

    def forward(self, tokens: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        return tokens_to_map(tokens, height, width)


# --- initialisation and weight decay ----------------------------------------------------------


def init_convs_fan_out(model: nn.Layer) -> None:
    """Every ``nn.Conv2D``: weight normal with std sqrt(2 / fan-out per group), bias zero (VAN, Twins)."""
    zero = Constant(0.0)
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, nn.Conv2D):
            out_channels, _, kernel_h, kernel_w = layer.weight.shape
            fan_out = kernel_h * kernel_w * out_channels // layer._groups
            Normal(0.0, math.sqrt(2.0 / fan_out))(layer.weight)
            if layer.bias is not None:
                zero(layer.bias)


def trunc_normal_parameter(layer: nn.Layer, shape: list[int], *, decay: bool = True) -> paddle.Tensor:
    """A new parameter of ``layer``, truncated-normal (std 0.02); ``decay=False`` keeps
    weight decay off it (position embeddings, class tokens)."""
    attr = paddle.ParamAttr(initializer=TruncatedNormal(std=INIT_STD), regularizer=None if decay else L2Decay(0.0))
    return layer.create_parameter(shape, attr=attr)


def constant_parameter(layer: nn.Layer, shape: list[int], value: float, *, decay: bool = True) -> paddle.Tensor:
    """A new parameter of ``layer`` filled with ``value``; ``decay=False`` keeps weight decay off it."""
    attr = paddle.ParamAttr(initializer=Constant(value), regularizer=None if decay else L2Decay(0.0))
    return layer.create_parameter(shape, attr=attr)


# --- argument checks --------------------------------------------------------------------------


def check_rates(name: str, **rates: float) -> None:
    """Dropout and drop-path rates must be numbers in [0, 1)."""
    for key, value in rates.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ComponentArgumentError(f"{name}: {key} must be a number in [0, 1); got {value!r}")


def check_positive_ints(name: str, key: str, values: object, count: int) -> list[int]:
    """``values`` as a list of ``count`` positive ints (one per stage), else a clear error."""
    if (
        not isinstance(values, (list, tuple))
        or len(values) != count
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)
    ):
        raise ComponentArgumentError(f"{name}: {key} needs {count} positive integers, one per stage; got {values!r}")
    return list(values)
