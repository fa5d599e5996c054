"""CvT, convolutional vision transformers (Wu et al. 2021, https://arxiv.org/abs/2103.15808):
three stages, each a strided convolutional token embedding and transformer blocks whose
queries, keys and values come from depthwise convolutions (keys and values at stride 2);
weight-compatible with PaddleClas 2.6's ``CvT_*`` (model_zoo/cvt.py).

No position embeddings and no windows: any input size works.
"""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import TRUNC_NORMAL, init_transformer_weights
from corolla.plugins.backbones._layers import conv_bn
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._tokens import tokens_to_map
from corolla.plugins.backbones._transformer import Mlp, QuickGELU

# --- building blocks -----------------------------------------------------------------------


class DepthwiseProjection(nn.Layer):
    """A 3x3 depthwise convolution (``conv``, no bias) and its BatchNorm (``bn``), from an
    ``[N, C, H, W]`` map to ``[N, H' * W', C]`` tokens."""

    def __init__(self, dim: int, stride: int) -> None:
        super().__init__()
        self.conv, self.bn = conv_bn(dim, dim, 3, stride=stride, padding=1, groups=dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.bn(self.conv(x)).flatten(2).transpose([0, 2, 1])


class ConvAttention(nn.Layer):
    """Multi-head attention whose queries, keys and values are :class:`DepthwiseProjection` s of
    the token map (``conv_proj_q``; ``conv_proj_k`` and ``conv_proj_v`` at stride 2), then
    linear maps (``proj_q``, ``proj_k``, ``proj_v``); a class token, if any, skips the
    convolutions. As in CvT, the products are scaled by ``dim ** -0.5`` (not per head)."""

    def __init__(self, dim: int, num_heads: int, *, with_cls_token: bool, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.with_cls_token = with_cls_token
        self.scale = dim**-0.5
        self.conv_proj_q = DepthwiseProjection(dim, stride=1)
        self.conv_proj_k = DepthwiseProjection(dim, stride=2)
        self.conv_proj_v = DepthwiseProjection(dim, stride=2)
        self.proj_q = nn.Linear(dim, dim)
        self.proj_k = nn.Linear(dim, dim)
        self.proj_v = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[N, T, C]`` -> ``[N, heads, T, C / heads]``."""
        return x.reshape([-1, x.shape[1], self.num_heads, self.dim // self.num_heads]).transpose([0, 2, 1, 3])

    def forward(self, x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        if self.with_cls_token:
            cls_token, x = paddle.split(x, [1, height * width], axis=1)
        features = tokens_to_map(x, height, width)
        q, k, v = (project(features) for project in (self.conv_proj_q, self.conv_proj_k, self.conv_proj_v))
        if self.with_cls_token:
            q, k, v = (paddle.concat([cls_token, t], axis=1) for t in (q, k, v))
        q, k, v = self._heads(self.proj_q(q)), self._heads(self.proj_k(k)), self._heads(self.proj_v(v))
        attn = nn.functional.softmax(paddle.matmul(q, k, transpose_y=True) * self.scale, axis=-1)
        x = paddle.matmul(self.attn_drop(attn), v).transpose([0, 2, 1, 3])
        return self.proj_drop(self.proj(x.reshape([-1, x.shape[1], self.dim])))


class CvTBlock(nn.Layer):
    """Convolutional attention, then an MLP (QuickGELU) of 4x width; pre-norm, residual."""

    def __init__(
        self, dim: int, num_heads: int, *, with_cls_token: bool, drop: float, attn_drop: float, drop_path: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ConvAttention(dim, num_heads, with_cls_token=with_cls_token, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim, act=QuickGELU, drop=drop)

    def forward(self, x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConvEmbed(nn.Layer):
    """The strided convolution of a stage (``proj``) and a LayerNorm over channels (``norm``),
    map in, map out."""

    def __init__(self, in_channels: int, dim: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(in_channels, dim, kernel_size, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.proj(x)
        height, width = x.shape[2], x.shape[3]
        return tokens_to_map(self.norm(x.flatten(2).transpose([0, 2, 1])), height, width)


class CvTStage(nn.Layer):
    """``patch_embed`` (:class:`ConvEmbed`), then ``blocks`` over its tokens, preceded by a
    class token (``cls_token``) where ``with_cls_token``. Returns the ``[N, C, H, W]`` map and
    the class token (``[N, 1, C]``, or None)."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        depth: int,
        num_heads: int,
        *,
        patch: tuple[int, int, int],
        with_cls_token: bool,
        drop_path_rate: float,
        drop: float,
        attn_drop: float,
    ) -> None:
        super().__init__()
        self.patch_embed = ConvEmbed(in_channels, dim, *patch)
        self.cls_token = self.create_parameter([1, 1, dim], default_initializer=TRUNC_NORMAL) if with_cls_token else None
        self.pos_drop = nn.Dropout(drop)
        self.blocks = nn.LayerList(
            CvTBlock(dim, num_heads, with_cls_token=with_cls_token, drop=drop, attn_drop=attn_drop, drop_path=rate)
            for rate in drop_path_rates(drop_path_rate, depth)
        )

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor | None]:
        x = self.patch_embed(x)
        height, width = x.shape[2], x.shape[3]
        x = x.flatten(2).transpose([0, 2, 1])
        if self.cls_token is not None:
            x = paddle.concat([self.cls_token.expand([x.shape[0], -1, -1]), x], axis=1)
        x = self.pos_drop(x)
        for block in self.blocks:
            x = block(x, height, width)
        cls_token = None
        if self.cls_token is not None:
            cls_token, x = paddle.split(x, [1, height * width], axis=1)
        return tokens_to_map(x, height, width), cls_token


# --- the model -----------------------------------------------------------------------------

#: per stage: (kernel, stride, padding) of its embedding convolution
PATCHES = ((7, 4, 2), (3, 2, 1), (3, 2, 1))


class CvT(Backbone):
    """CvT: three :class:`CvTStage` s (``stage0-2``, at strides 4, 8, 16; the last with a class
    token), a LayerNorm of the class token (``norm``) and the classifier ``head``.

    ``dims``, ``num_heads``, ``depths``: per stage; ``drop_path_rate``: the stochastic depth of
    the last stage's last block (the first two stages have none). ``lr_mult_list`` has 3
    values, one per stage; ``return_stages`` gives each stage's tokens after its last block,
    ``[N, H * W, C]`` (the last stage's with the class token first: ``[N, 1 + H * W, C]``).
    """

    def __init__(
        self,
        *,
        dims: tuple[int, int, int],
        num_heads: tuple[int, int, int],
        depths: tuple[int, int, int],
        drop_path_rate: float,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        stages = []
        in_channels = 3
        for i, (dim, heads, depth) in enumerate(zip(dims, num_heads, depths)):
            last = i == len(dims) - 1
            stage = CvTStage(
                in_channels, dim, depth, heads, patch=PATCHES[i], with_cls_token=last,
                drop_path_rate=drop_path_rate if last else 0.0, drop=0.0, attn_drop=0.0,
            )
            stages.append(self.add_sublayer(f"stage{i}", stage))
            in_channels = dim
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], self.class_num)

        init_transformer_weights(self)
        bound = dims[-1] ** -0.5
        nn.initializer.Uniform(-bound, bound)(self.head.bias)
        self.finish(lr_groups={f"stage{i}": [stage] for i, stage in enumerate(stages)}, stages=[s.blocks[-1] for s in stages])
        self.num_stages = len(stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for i in range(self.num_stages):
            x, cls_token = getattr(self, f"stage{i}")(x)
        return self.head(self.norm(cls_token).squeeze(1))


# --- pretrained weights (PaddleClas 2.6 model zoo; its docs give no CvT top-1) -------------------
# PaddleClas loads CvT_W24_384's ImageNet-22k-then-1k weights (its only file), and so does corolla.

_URL = MODEL_ZOO_URL + "{}_pretrained.pdparams"

WEIGHTS = (
    weights_table(_URL, {"CvT_13_224": None, "CvT_21_224": None})
    | weights_table(_URL, {"CvT_13_384": None, "CvT_21_384": None}, input_size=384)
    | weights_table(MODEL_ZOO_URL + "{}_22kto1k_pretrained.pdparams", {"CvT_W24_384": None}, input_size=384)
)

# --- registered names ---------------------------------------------------------------------------

_NARROW = dict(dims=(64, 192, 384), num_heads=(1, 3, 6), drop_path_rate=0.1)

VARIANTS = {
    "CvT_13_224": dict(depths=(1, 2, 10), **_NARROW),
    "CvT_13_384": dict(depths=(1, 2, 10), **_NARROW),
    "CvT_21_224": dict(depths=(1, 4, 16), **_NARROW),
    "CvT_21_384": dict(depths=(1, 4, 16), **_NARROW),
    "CvT_W24_384": dict(dims=(192, 768, 1024), num_heads=(3, 12, 16), depths=(2, 2, 20), drop_path_rate=0.3),
}

BUILDERS = builders(CvT, VARIANTS, WEIGHTS)
