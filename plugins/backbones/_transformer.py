"""Building blocks that corolla's transformer backbones share.

Parameter names follow PaddleClas 2.6 (``qkv``, ``proj``, ``fc1``/``fc2``, ``norm1``/``norm2``,
``patch_embed.proj``), so that a family built from these blocks loads PaddleClas's ``.pdparams``.

- attention: :func:`split_heads`, :func:`merge_heads`, :func:`attend`, :class:`Attention`
  (over all tokens), :class:`SpatialReductionAttention` (keys and values from a smaller map);
- layers: :class:`Mlp`, :class:`EncoderBlock`, :class:`PatchEmbed`, :class:`QuickGELU`,
  :func:`linear`.
"""
from __future__ import annotations

from typing import Callable

import paddle
from paddle import nn

from corolla.plugins.backbones._regularize import DropPath
from corolla.plugins.backbones._tokens import map_to_tokens, tokens_to_map

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


class Attention(nn.Layer):
    """Multi-head self-attention over all tokens: one ``qkv`` projection, then ``proj``.

    ``scale`` multiplies the query-key products (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = False,
        scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=None if qkv_bias else False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        tokens, dim = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape([-1, tokens, 3, self.num_heads, dim // self.num_heads])
        q, k, v = qkv.transpose([2, 0, 3, 1, 4]).unbind(0)
        attn = nn.functional.softmax(paddle.matmul(q, k, transpose_y=True) * self.scale, axis=-1)
        x = paddle.matmul(self.attn_drop(attn), v).transpose([0, 2, 1, 3]).reshape([-1, tokens, dim])
        return self.proj_drop(self.proj(x))


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


# --- layers -----------------------------------------------------------------------------------


def linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """``nn.Linear``, with or without a bias."""
    return nn.Linear(in_features, out_features, bias_attr=None if bias else False)


class QuickGELU(nn.Layer):
    """``x * sigmoid(1.702 x)``, the sigmoid approximation of GELU (CvT, CLIP)."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * nn.functional.sigmoid(1.702 * x)


class Mlp(nn.Layer):
    """``fc1`` -> activation -> dropout -> ``fc2`` -> dropout.

    ``act`` builds the activation (GELU by default); ``linear`` the two linear layers.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        act: Callable[[], nn.Layer] = nn.GELU,
        drop: float = 0.0,
        linear: Callable[..., nn.Layer] = nn.Linear,
    ) -> None:
        super().__init__()
        self.fc1 = linear(in_features, hidden_features)
        self.act = act()
        self.fc2 = linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class EncoderBlock(nn.Layer):
    """The pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``,
    each branch through stochastic depth."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        epsilon: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=epsilon)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, scale=scale, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=epsilon)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Layer):
    """Non-overlapping patches to tokens: a ``patch_size`` convolution of that stride
    (``proj``), flattened to ``[N, H * W, embed_dim]``, then a LayerNorm (``norm``) if ``norm``."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int, *, norm: bool = False) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2D(in_channels, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, tuple[int, int]]:
        """The tokens and the (height, width) of the patch grid."""
        x = self.proj(x)
        height, width = x.shape[2], x.shape[3]
        x = x.flatten(2).transpose([0, 2, 1])
        if self.norm is not None:
            x = self.norm(x)
        return x, (height, width)
