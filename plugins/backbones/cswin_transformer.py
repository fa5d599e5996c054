"""CSWin Transformer (Dong et al. 2021, https://arxiv.org/abs/2107.00652): self-attention in
cross-shaped windows, half the heads in vertical stripes and half in horizontal ones, with a
locally-enhanced positional encoding (LePE); weight-compatible with PaddleClas 2.6's
``CSWinTransformer_*`` (model_zoo/cswin_transformer.py).
"""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, native_input_size
from corolla.plugins.backbones._checks import check_input_size, check_rate
from corolla.plugins.backbones._init import init_transformer_weights
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._tokens import tokens_to_map, window_merge, window_partition
from corolla.plugins.backbones._transformer import Mlp

# --- building blocks -----------------------------------------------------------------------


class LePEAttention(nn.Layer):
    """Multi-head self-attention inside ``stripe`` (height, width) rectangles of a
    ``resolution`` x ``resolution`` map, plus the LePE: a 3x3 depthwise convolution of the
    values inside each stripe (``get_v``), added to the attention's output."""

    def __init__(self, dim: int, num_heads: int, *, stripe: tuple[int, int], resolution: int, attn_drop: float) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.stripe = stripe
        self.resolution = resolution
        self.scale = (dim // num_heads) ** -0.5
        self.get_v = nn.Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.attn_drop = nn.Dropout(attn_drop)

    def _stripes(self, tokens: paddle.Tensor) -> paddle.Tensor:
        """``[N, H * W, C]`` -> ``[N * stripes, stripe tokens, C]``."""
        return window_partition(tokens.reshape([-1, self.resolution, self.resolution, self.dim]), self.stripe)

    def _heads(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, T, C]`` -> ``[B, heads, T, C / heads]``."""
        return x.reshape([-1, x.shape[1], self.num_heads, self.dim // self.num_heads]).transpose([0, 2, 1, 3])

    def forward(self, q: paddle.Tensor, k: paddle.Tensor, v: paddle.Tensor) -> paddle.Tensor:
        """``q``, ``k``, ``v``: ``[N, H * W, C]``; returns ``[N, H * W, C]``."""
        q, k, v = self._stripes(q), self._stripes(k), self._stripes(v)
        tokens = v.shape[1]
        # the positional encoding sees each stripe alone, zero-padded at its borders
        lepe = self.get_v(v.transpose([0, 2, 1]).reshape([-1, self.dim, *self.stripe]))
        lepe = lepe.reshape([-1, self.dim, tokens]).transpose([0, 2, 1])
        attn = nn.functional.softmax(paddle.matmul(self._heads(q) * self.scale, self._heads(k), transpose_y=True), axis=-1)
        x = paddle.matmul(self.attn_drop(attn), self._heads(v)).transpose([0, 2, 1, 3]).reshape([-1, tokens, self.dim])
        x = window_merge(x + lepe, self.stripe, self.resolution, self.resolution)
        return x.reshape([-1, self.resolution * self.resolution, self.dim])


class CSWinBlock(nn.Layer):
    """Cross-shaped window attention, then an MLP of 4x width; pre-norm, residual. One ``qkv``
    projection feeds two :class:`LePEAttention` branches (``attns``) on half the channels and
    heads each, in stripes ``split`` wide: vertical (full height) and horizontal (full width).
    In the last stage (``last``) one branch attends over the whole map."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        resolution: int,
        split: int,
        last: bool,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        stripes = [(resolution, resolution)] if last else [(resolution, split), (split, resolution)]
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3)
        self.attns = nn.LayerList(
            LePEAttention(
                dim // len(stripes), num_heads // len(stripes), stripe=stripe, resolution=resolution, attn_drop=attn_drop
            )
            for stripe in stripes
        )
        self.proj = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim, drop=drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        branches = len(self.attns)
        q, k, v = (t.chunk(branches, axis=-1) for t in self.qkv(self.norm1(x)).chunk(3, axis=-1))
        attended = [attn(q[i], k[i], v[i]) for i, attn in enumerate(self.attns)]
        x = x + self.drop_path(self.proj(paddle.concat(attended, axis=-1) if branches > 1 else attended[0]))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TokenConv(nn.Layer):
    """A convolution over the token map, its output flattened back to tokens and normalised:
    ``conv_name`` (the convolution, named as PaddleClas names it) then ``norm``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, conv_name: str) -> None:
        super().__init__()
        self.conv_name = conv_name
        self.add_sublayer(conv_name, nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=padding))
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = getattr(self, self.conv_name)(x)
        return self.norm(x.flatten(2).transpose([0, 2, 1]))


class CSWinStage(nn.Layer):
    """``blocks``, then ``merge`` (a stride-2 3x3 convolution to twice the channels) except in
    the last stage."""

    def __init__(self, dim: int, depth: int, *, resolution: int, drop_paths: list[float], last: bool, **block: Any) -> None:
        super().__init__()
        self.resolution = resolution
        self.blocks = nn.LayerList(
            CSWinBlock(dim, resolution=resolution, last=last, drop_path=drop_paths[i], **block) for i in range(depth)
        )
        self.merge = None if last else TokenConv(dim, 2 * dim, 3, stride=2, padding=1, conv_name="conv")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for block in self.blocks:
            x = block(x)
        if self.merge is not None:
            x = self.merge(tokens_to_map(x, self.resolution, self.resolution))
        return x


# --- the model -----------------------------------------------------------------------------


class CSWinTransformer(Backbone):
    """CSWin Transformer: ``patch_embedding`` (a stride-4 7x7 convolution, LayerNorm), four
    stages of CSWin blocks (``stages.0-3``) with a convolutional merge after each of the first
    three, a final LayerNorm (``norm``), the mean over tokens and the classifier ``head``.
    Takes ``img_size`` square images only (the stripes are fixed).

    ``dropout``: dropout in each block's MLP; ``attention_dropout``: dropout of the attention
    weights (PaddleClas's names). ``lr_mult_list`` has 5 values: the patch embedding, then each
    stage (with its merge); ``return_stages`` gives each stage's tokens before its merge,
    ``[N, H * W, C]`` at strides 4, 8, 16, 32.
    """

    def __init__(
        self,
        *,
        img_size: int,
        embed_dim: int,
        depths: tuple[int, int, int, int],
        splits: tuple[int, int, int, int],
        num_heads: tuple[int, int, int, int],
        droppath: float,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        for key, value in (("dropout", dropout), ("attention_dropout", attention_dropout)):
            check_rate(self.model_name, key, value)
        resolution = img_size // 4
        self.img_size = img_size
        self.patch_embedding = TokenConv(3, embed_dim, 7, stride=4, padding=2, conv_name="patch_embed")
        rates = drop_path_rates(droppath, sum(depths))
        self.stages = nn.LayerList()
        for i, (depth, split, heads) in enumerate(zip(depths, splits, num_heads)):
            first = sum(depths[:i])
            self.stages.append(
                CSWinStage(
                    embed_dim * 2**i, depth, resolution=resolution // 2**i, drop_paths=rates[first : first + depth],
                    last=i == len(depths) - 1, num_heads=heads, split=split, drop=dropout, attn_drop=attention_dropout,
                )
            )
        features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(features)
        self.head = nn.Linear(features, self.class_num)

        init_transformer_weights(self)
        groups = {"patch_embedding": [self.patch_embedding], **{f"stage{i}": [s] for i, s in enumerate(self.stages)}}
        self.finish(lr_groups=groups, stages=[stage.blocks[-1] for stage in self.stages])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        check_input_size(self.model_name, x, self.img_size, "stripes")
        x = self.patch_embedding(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(self.norm(x).mean(axis=1))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its CSWin Transformer docs) -----------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "CSWinTransformer_tiny_224": 0.8281,
        "CSWinTransformer_small_224": 0.8358,
        "CSWinTransformer_base_224": 0.8420,
        "CSWinTransformer_large_224": 0.8643,
    },
) | weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"CSWinTransformer_base_384": 0.8550, "CSWinTransformer_large_384": 0.8748},
    input_size=384,
)

# --- registered names ---------------------------------------------------------------------------

_NARROW = dict(embed_dim=64, num_heads=(2, 4, 8, 16))
_BASE = dict(embed_dim=96, num_heads=(4, 8, 16, 32))
_LARGE = dict(embed_dim=144, num_heads=(6, 12, 24, 24))
_DEEP = (2, 4, 32, 2)

VARIANTS = {
    "CSWinTransformer_tiny_224": dict(img_size=224, depths=(1, 2, 21, 1), splits=(1, 2, 7, 7), droppath=0.2, **_NARROW),
    "CSWinTransformer_small_224": dict(img_size=224, depths=_DEEP, splits=(1, 2, 7, 7), droppath=0.4, **_NARROW),
    "CSWinTransformer_base_224": dict(img_size=224, depths=_DEEP, splits=(1, 2, 7, 7), droppath=0.5, **_BASE),
    "CSWinTransformer_large_224": dict(img_size=224, depths=_DEEP, splits=(1, 2, 7, 7), droppath=0.5, **_LARGE),
    "CSWinTransformer_base_384": dict(img_size=384, depths=_DEEP, splits=(1, 2, 12, 12), droppath=0.5, **_BASE),
    "CSWinTransformer_large_384": dict(img_size=384, depths=_DEEP, splits=(1, 2, 12, 12), droppath=0.5, **_LARGE),
}

#: the stripes fix each variant's input size
MIN_INPUT_SIZE = native_input_size(VARIANTS)

BUILDERS = builders(CSWinTransformer, VARIANTS, WEIGHTS)
