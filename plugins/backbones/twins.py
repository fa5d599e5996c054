"""Twins (Chu et al. 2021, https://arxiv.org/abs/2104.13840): Twins-PCPVT, a pyramid transformer
with spatial-reduction attention and a convolutional position encoding after each stage's first
block, and Twins-SVT (ALTGVT), which alternates attention within 7x7 windows with attention to
a sub-sampled map; weight-compatible with PaddleClas 2.6's ``pcpvt_*`` and ``alt_gvt_*``."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn
from paddle.regularizer import L2Decay

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, embedded_stages
from corolla.plugins.backbones._checks import check_rates
from corolla.plugins.backbones._init import init_convs_fan_out, init_transformer_weights
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._tokens import TokensToMap, map_to_tokens, tokens_to_map, window_merge, window_partition
from corolla.plugins.backbones._transformer import Attention, Mlp, SpatialReductionAttention

#: epsilon of the LayerNorms in the blocks and before the classifier
NORM_EPS = 1e-6

# --- building blocks -----------------------------------------------------------------------


class LocallyGroupedAttention(Attention):
    """Self-attention within each ``window_size`` x ``window_size`` window of the map (Twins-SVT's
    LSA); the map's sides must be multiples of the window."""

    def __init__(self, dim: int, num_heads: int, *, window_size: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__(dim, num_heads, qkv_bias=True, attn_drop=attn_drop, proj_drop=proj_drop)
        self.window_size = window_size

    def forward(self, x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        batch, tokens, dim = x.shape
        ws = self.window_size
        if isinstance(height, int) and (height % ws or width % ws):
            raise ValueError(
                f"windowed attention needs maps whose sides are multiples of {ws}; got {height}x{width} "
                f"(Twins-SVT takes inputs whose sides are multiples of {32 * ws})"
            )
        windows = window_partition(x.reshape([batch, height, width, dim]), ws)
        return window_merge(super().forward(windows), ws, height, width).reshape([batch, tokens, dim])


class TwinsBlock(nn.Layer):
    """Pre-norm transformer block: attention (windowed when ``window_size`` > 1, else to the map
    reduced ``sr_ratio`` times per side), then the MLP."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        mlp_ratio: float,
        sr_ratio: int,
        window_size: int,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        if window_size > 1:
            self.attn = LocallyGroupedAttention(dim, num_heads, window_size=window_size, attn_drop=attn_drop, proj_drop=drop)
        else:
            self.attn = SpatialReductionAttention(
                dim, num_heads, qkv_bias=True, sr_ratio=sr_ratio, attn_drop=attn_drop, proj_drop=drop
            )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Layer):
    """Non-overlapping patches: a convolution with stride = kernel (``proj``), then LayerNorm."""

    def __init__(self, in_channels: int, out_channels: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(in_channels, out_channels, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, int, int]:
        x = self.proj(x)
        height, width = x.shape[2:]
        return self.norm(map_to_tokens(x)), height, width


class PositionEncoding(nn.Layer):
    """CPVT's position encoding generator: the tokens plus a 3x3 depthwise conv of their map;
    weight decay stays off its parameters."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        no_decay = paddle.ParamAttr(regularizer=L2Decay(0.0))
        self.proj = nn.Sequential(nn.Conv2D(dim, dim, 3, padding=1, groups=dim, weight_attr=no_decay, bias_attr=no_decay))

    def forward(self, x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        feature_map = tokens_to_map(x, height, width)
        return map_to_tokens(self.proj(feature_map) + feature_map)


# --- the model -----------------------------------------------------------------------------


class Twins(Backbone):
    """Twins: four stages, each a patch embedding (``patch_embeds``: 4x4, then 2x2), blocks
    (``blocks``) with the position encoding (``pos_block``) after the first; then LayerNorm
    ``norm``, the mean over tokens and the classifier ``head``.

    ``embed_dims``, ``num_heads``, ``mlp_ratios``, ``depths``, ``sr_ratios``: per stage;
    ``window_sizes``: per stage, for Twins-SVT (every other block attends within windows of that
    size; the input's sides must be multiples of 32 x window), or None for Twins-PCPVT.
    ``drop_rate``, ``attn_drop_rate``: dropout after projections and on attention weights;
    ``drop_path_rate``: the stochastic-depth rate of the last block (rising linearly from 0).
    ``lr_mult_list`` has 5 values: the stem (the first patch embedding), then each stage;
    ``return_stages`` gives the four stage maps ``[N, C, H, W]`` (strides 4, 8, 16, 32).
    """

    def __init__(
        self,
        *,
        embed_dims: Sequence[int],
        num_heads: Sequence[int],
        mlp_ratios: Sequence[float],
        depths: Sequence[int],
        sr_ratios: Sequence[int],
        window_sizes: Sequence[int] | None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        check_rates(contract["name"], drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        rates = iter(drop_path_rates(drop_path_rate, sum(depths)))
        self.patch_embeds = nn.LayerList()
        self.pos_drops = nn.LayerList()
        self.blocks = nn.LayerList()
        self.pos_block = nn.LayerList()
        in_channels = 3
        for stage, dim in enumerate(embed_dims):
            self.patch_embeds.append(PatchEmbed(in_channels, dim, 4 if stage == 0 else 2))
            self.pos_drops.append(nn.Dropout(drop_rate))
            self.blocks.append(
                nn.LayerList(
                    TwinsBlock(
                        dim, num_heads=num_heads[stage], mlp_ratio=mlp_ratios[stage], sr_ratio=sr_ratios[stage],
                        window_size=window_sizes[stage] if window_sizes and i % 2 == 0 else 1,
                        drop=drop_rate, attn_drop=attn_drop_rate, drop_path=next(rates),
                    )
                    for i in range(depths[stage])
                )
            )
            self.pos_block.append(PositionEncoding(dim))
            in_channels = dim
        self.stage_maps = nn.LayerList([TokensToMap() for _ in embed_dims])
        self.norm = nn.LayerNorm(embed_dims[-1], epsilon=NORM_EPS)
        self.head = nn.Linear(embed_dims[-1], self.class_num)

        init_transformer_weights(self)
        init_convs_fan_out(self, per_group=True, zero_bias=True)
        stages = list(zip(self.patch_embeds, self.blocks, self.pos_block))
        self.finish(lr_groups=embedded_stages(stages), stages=list(self.stage_maps))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for stage, blocks in enumerate(self.blocks):
            x, height, width = self.patch_embeds[stage](x)
            x = self.pos_drops[stage](x)
            for i, block in enumerate(blocks):
                x = block(x, height, width)
                if i == 0:
                    x = self.pos_block[stage](x, height, width)
            x = self.stage_maps[stage](x, height, width)
        return self.head(self.norm(map_to_tokens(x)).mean(axis=1))


def _smallest_input(name: str) -> int:
    """Twins-SVT's windows need 224 (32 x the window of 7); Twins-PCPVT takes any size from 32."""
    return 224 if name.startswith("alt_gvt") else 32


MIN_INPUT_SIZE = _smallest_input

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "pcpvt_small": 0.8115,
        "pcpvt_base": 0.8268,
        "pcpvt_large": 0.8306,
        "alt_gvt_small": 0.8177,
        "alt_gvt_base": 0.8315,
        "alt_gvt_large": 0.8364,
    },
)

# --- registered names ---------------------------------------------------------------------------

_PCPVT = dict(
    embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), sr_ratios=(8, 4, 2, 1), window_sizes=None
)
_ALTGVT = dict(mlp_ratios=(4, 4, 4, 4), sr_ratios=(8, 4, 2, 1), window_sizes=(7, 7, 7, 7))

VARIANTS = {
    "pcpvt_small": dict(_PCPVT, depths=(3, 4, 6, 3)),
    "pcpvt_base": dict(_PCPVT, depths=(3, 4, 18, 3)),
    "pcpvt_large": dict(_PCPVT, depths=(3, 8, 27, 3)),
    "alt_gvt_small": dict(_ALTGVT, embed_dims=(64, 128, 256, 512), num_heads=(2, 4, 8, 16), depths=(2, 2, 10, 4)),
    "alt_gvt_base": dict(_ALTGVT, embed_dims=(96, 192, 384, 768), num_heads=(3, 6, 12, 24), depths=(2, 2, 18, 2)),
    "alt_gvt_large": dict(_ALTGVT, embed_dims=(128, 256, 512, 1024), num_heads=(4, 8, 16, 32), depths=(2, 2, 18, 2)),
}

BUILDERS = builders(Twins, VARIANTS, WEIGHTS)
