"""TNT, Transformer in Transformer (Han et al. 2021, https://arxiv.org/abs/2103.00112): an inner
transformer over the "pixels" (4x4 sub-patches) of each 16x16 patch feeds an outer transformer
over the patches; weight-compatible with PaddleClas 2.6's ``TNT_small`` and ``TNT_base``.

PaddleClas trained it on images normalised with mean and std 0.5 (not ImageNet's statistics).
"""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._checks import check_input_size, check_rates
from corolla.plugins.backbones._init import init_transformer_weights, trunc_normal_parameter
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._transformer import Mlp, attend, linear, merge_heads, split_heads

#: the input size the position embeddings are for
IMAGE_SIZE = 224
#: side of a patch, in pixels
PATCH_SIZE = 16
#: stride of the pixel embedding: each patch becomes (16 / 4)^2 = 16 "pixels"
PIXEL_STRIDE = 4
#: hidden width of the inner and outer MLPs, relative to their input
MLP_RATIO = 4

# --- building blocks -----------------------------------------------------------------------


class TNTAttention(nn.Layer):
    """Multi-head self-attention with a joint query-key projection ``qk`` and a separate value
    projection ``v`` (both bias-free), then ``proj``."""

    def __init__(self, dim: int, num_heads: int, *, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qk = linear(dim, dim * 2, bias=False)
        self.v = linear(dim, dim, bias=False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        batch, tokens, dim = x.shape
        qk = self.qk(x).reshape([batch, tokens, 2, self.num_heads, dim // self.num_heads]).transpose([2, 0, 3, 1, 4])
        out = attend(qk[0], qk[1], split_heads(self.v(x), self.num_heads), self.scale, self.attn_drop)
        return self.proj_drop(self.proj(merge_heads(out)))


class TNTBlock(nn.Layer):
    """An inner transformer block over each patch's pixels (``*_in``); each patch's pixels,
    flattened and projected (``norm1_proj``, ``proj``, ``norm2_proj``), added to its token (the
    class token gets nothing); then an outer transformer block over the tokens (``*_out``, ``mlp``)."""

    def __init__(
        self, dim: int, pixel_dim: int, num_pixels: int, *, num_heads: int, inner_heads: int,
        drop: float, attn_drop: float, drop_path: float,
    ) -> None:
        super().__init__()
        self.norm_in = nn.LayerNorm(pixel_dim)
        self.attn_in = TNTAttention(pixel_dim, inner_heads, attn_drop=attn_drop, proj_drop=drop)
        self.norm_mlp_in = nn.LayerNorm(pixel_dim)
        self.mlp_in = Mlp(pixel_dim, pixel_dim * MLP_RATIO, drop=drop)
        self.norm1_proj = nn.LayerNorm(pixel_dim * num_pixels)
        self.proj = linear(pixel_dim * num_pixels, dim, bias=False)
        self.norm2_proj = nn.LayerNorm(dim)
        self.norm_out = nn.LayerNorm(dim)
        self.attn_out = TNTAttention(dim, num_heads, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * MLP_RATIO, drop=drop)

    def forward(self, pixels: paddle.Tensor, patches: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        pixels = pixels + self.drop_path(self.attn_in(self.norm_in(pixels)))
        pixels = pixels + self.drop_path(self.mlp_in(self.norm_mlp_in(pixels)))
        batch, tokens, _ = patches.shape
        inner = self.norm2_proj(self.proj(self.norm1_proj(pixels.reshape([batch, tokens - 1, -1]))))
        patches = paddle.concat([patches[:, :1], patches[:, 1:] + inner], axis=1)
        patches = patches + self.drop_path(self.attn_out(self.norm_out(patches)))
        patches = patches + self.drop_path(self.mlp(self.norm_mlp(patches)))
        return pixels, patches


class PixelEmbed(nn.Layer):
    """Cuts the image into 16x16 patches and embeds each with a 7x7 stride-4 convolution
    (``proj``), giving ``[batch * patches, 16 pixels, pixel_dim]``."""

    def __init__(self, pixel_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(3, pixel_dim, 7, stride=PIXEL_STRIDE, padding=3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        batch, channels, height, width = x.shape
        rows, cols = height // PATCH_SIZE, width // PATCH_SIZE
        patches = x.reshape([batch, channels, rows, PATCH_SIZE, cols, PATCH_SIZE]).transpose([0, 2, 4, 1, 3, 5])
        pixels = self.proj(patches.reshape([batch * rows * cols, channels, PATCH_SIZE, PATCH_SIZE]))
        return pixels.flatten(2).transpose([0, 2, 1])


# --- the model -----------------------------------------------------------------------------


class TNT(Backbone):
    """TNT for 224x224 input: pixel embedding (``pixel_embed`` plus ``pixel_pos``), the patch
    tokens made from them (``norm1_proj``, ``proj``, ``norm2_proj``) with a class token
    (``cls_token``) and position embedding (``patch_pos``), TNT blocks (``blocks``), LayerNorm
    ``norm`` and the classifier ``head`` on the class token.

    ``embed_dim``, ``num_heads``: the patch tokens; ``pixel_dim``, ``inner_heads``: the pixels;
    ``depth``: the number of blocks.
    ``drop_rate``, ``attn_drop_rate``: dropout after projections and on attention weights;
    ``drop_path_rate``: the stochastic-depth rate of the last block (rising linearly from 0).
    No stages or parameter groups; ``return_patterns`` can name layers (``"blocks[11]"``).
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        pixel_dim: int,
        num_heads: int,
        inner_heads: int,
        depth: int,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        check_rates(contract["name"], drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        num_pixels = (PATCH_SIZE // PIXEL_STRIDE) ** 2
        num_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
        self.pixel_embed = PixelEmbed(pixel_dim)
        self.norm1_proj = nn.LayerNorm(num_pixels * pixel_dim)
        self.proj = nn.Linear(num_pixels * pixel_dim, embed_dim)
        self.norm2_proj = nn.LayerNorm(embed_dim)
        self.cls_token = trunc_normal_parameter(self, [1, 1, embed_dim])
        self.patch_pos = trunc_normal_parameter(self, [1, num_patches + 1, embed_dim])
        self.pixel_pos = trunc_normal_parameter(self, [1, num_pixels, pixel_dim])
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.LayerList(
            TNTBlock(
                embed_dim, pixel_dim, num_pixels, num_heads=num_heads, inner_heads=inner_heads,
                drop=drop_rate, attn_drop=attn_drop_rate, drop_path=rate,
            )
            for rate in drop_path_rates(drop_path_rate, depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, self.class_num)
        init_transformer_weights(self)
        self.finish()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        batch = x.shape[0]
        check_input_size(self.model_name, x, IMAGE_SIZE, "position embeddings")
        pixels = self.pixel_embed(x) + self.pixel_pos
        patches = self.norm2_proj(self.proj(self.norm1_proj(pixels.reshape([batch, self.patch_pos.shape[1] - 1, -1]))))
        patches = paddle.concat([self.cls_token.expand([batch, -1, -1]).astype(patches.dtype), patches], axis=1)
        patches = self.pos_drop(patches + self.patch_pos)
        for block in self.blocks:
            pixels, patches = block(pixels, patches)
        return self.head(self.norm(patches)[:, 0])


MIN_INPUT_SIZE = IMAGE_SIZE

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"TNT_small": 0.8121, "TNT_base": None})

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "TNT_small": dict(embed_dim=384, pixel_dim=24, num_heads=6, inner_heads=4, depth=12),
    "TNT_base": dict(embed_dim=640, pixel_dim=40, num_heads=10, inner_heads=4, depth=12),
}

BUILDERS = builders(TNT, VARIANTS, WEIGHTS)
