"""PVTv2, the Pyramid Vision Transformer v2 (Wang et al. 2021, https://arxiv.org/abs/2106.13797):
a four-stage transformer pyramid with overlapping patch embeddings, spatial-reduction attention
and a depthwise conv in each MLP; weight-compatible with PaddleClas 2.6's ``PVT_V2_B0`` ...
``PVT_V2_B5`` and ``PVT_V2_B2_Linear``."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, embedded_stages
from corolla.plugins.backbones._checks import check_positive_ints, check_rates
from corolla.plugins.backbones._init import init_transformer_weights
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._tokens import TokensToMap, map_to_tokens, tokens_to_map
from corolla.plugins.backbones._transformer import SpatialReductionAttention

#: epsilon of the LayerNorms in the blocks and closing each stage
NORM_EPS = 1e-6

# --- building blocks -----------------------------------------------------------------------


class DepthwiseConv(nn.Layer):
    """A 3x3 depthwise convolution with bias (``dwconv``) applied to tokens laid out as a map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2D(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        return map_to_tokens(self.dwconv(tokens_to_map(x, height, width)))


class ConvFeedForward(nn.Layer):
    """``fc1`` (then ReLU in the linear variant) -> 3x3 depthwise conv -> GELU -> dropout ->
    ``fc2`` -> dropout."""

    def __init__(self, dim: int, hidden: int, *, drop: float, linear_reduction: bool) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.relu = nn.ReLU() if linear_reduction else None
        self.dwconv = DepthwiseConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        x = self.fc1(x)
        if self.relu is not None:
            x = self.relu(x)
        x = self.drop(self.act(self.dwconv(x, height, width)))
        return self.drop(self.fc2(x))


class PVTBlock(nn.Layer):
    """Pre-norm transformer block: spatial-reduction attention, then the conv feed-forward."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        mlp_ratio: float,
        sr_ratio: int,
        linear_reduction: bool,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        self.attn = SpatialReductionAttention(
            dim, num_heads, qkv_bias=True, sr_ratio=sr_ratio, linear_reduction=linear_reduction,
            attn_drop=attn_drop, proj_drop=drop,
        )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        self.mlp = ConvFeedForward(dim, int(dim * mlp_ratio), drop=drop, linear_reduction=linear_reduction)

    def forward(self, x: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x), height, width))


class OverlapPatchEmbed(nn.Layer):
    """A strided convolution with overlapping windows (``proj``), then LayerNorm over the tokens."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, int, int]:
        x = self.proj(x)
        height, width = x.shape[2:]
        return self.norm(map_to_tokens(x)), height, width


# --- the model -----------------------------------------------------------------------------


class PVTV2(Backbone):
    """PVTv2: four stages, each an overlapping patch embedding (``patch_embed1..4``: 7x7
    stride 4, then 3x3 stride 2), transformer blocks (``block1..4``) and a LayerNorm
    (``norm1..4``); the mean of the last stage's tokens goes to the classifier ``head``.

    ``embed_dims``, ``num_heads``, ``mlp_ratios``, ``depths``, ``sr_ratios``: per stage (the
    attention's keys and values come from the map reduced ``sr_ratio`` times per side);
    ``linear``: pool keys and values to 7x7 instead (PVTv2-Li). ``drop_rate``,
    ``attn_drop_rate``: dropout after projections and on attention weights;
    ``drop_path_rate``: the stochastic-depth rate of the last block (rising linearly from 0).
    ``lr_mult_list`` has 5 values: the stem (``patch_embed1``), then each stage;
    ``return_stages`` gives the four stage maps ``[N, C, H, W]`` (strides 4, 8, 16, 32).
    """

    def __init__(
        self,
        *,
        embed_dims: Sequence[int],
        num_heads: Sequence[int],
        mlp_ratios: Sequence[float],
        depths: Sequence[int],
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        linear: bool = False,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        check_rates(name, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        sr_ratios = check_positive_ints(name, "sr_ratios", sr_ratios, len(embed_dims))
        rates = iter(drop_path_rates(drop_path_rate, sum(depths)))
        in_channels = 3
        for i, (dim, heads, mlp_ratio, depth, sr_ratio) in enumerate(
            zip(embed_dims, num_heads, mlp_ratios, depths, sr_ratios), start=1
        ):
            kernel_size, stride = (7, 4) if i == 1 else (3, 2)
            setattr(self, f"patch_embed{i}", OverlapPatchEmbed(in_channels, dim, kernel_size=kernel_size, stride=stride))
            blocks = [
                PVTBlock(
                    dim, num_heads=heads, mlp_ratio=mlp_ratio, sr_ratio=sr_ratio, linear_reduction=linear,
                    drop=drop_rate, attn_drop=attn_drop_rate, drop_path=next(rates),
                )
                for _ in range(depth)
            ]
            setattr(self, f"block{i}", nn.LayerList(blocks))
            setattr(self, f"norm{i}", nn.LayerNorm(dim, epsilon=NORM_EPS))
            in_channels = dim
        self.num_stages = len(embed_dims)
        self.stage_maps = nn.LayerList([TokensToMap() for _ in range(self.num_stages)])
        self.head = nn.Linear(embed_dims[-1], self.class_num)

        init_transformer_weights(self)
        stages = [self._stage(i) for i in range(1, self.num_stages + 1)]
        self.finish(lr_groups=embedded_stages(stages), stages=list(self.stage_maps))

    def _stage(self, i: int) -> list[nn.Layer]:
        return [getattr(self, f"patch_embed{i}"), getattr(self, f"block{i}"), getattr(self, f"norm{i}")]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for i in range(1, self.num_stages + 1):
            patch_embed, blocks, norm = self._stage(i)
            x, height, width = patch_embed(x)
            for block in blocks:
                x = block(x, height, width)
            x = self.stage_maps[i - 1](norm(x), height, width)
        return self.head(x.mean(axis=[2, 3]))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "PVT_V2_B0": 0.7052,
        "PVT_V2_B1": 0.7869,
        "PVT_V2_B2": 0.8206,
        "PVT_V2_B2_Linear": 0.8205,
        "PVT_V2_B3": 0.8310,
        "PVT_V2_B4": 0.8361,
        "PVT_V2_B5": 0.8374,
    },
)

# --- registered names ---------------------------------------------------------------------------

_WIDE = dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4))

VARIANTS = {
    "PVT_V2_B0": dict(embed_dims=(32, 64, 160, 256), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), depths=(2, 2, 2, 2)),
    "PVT_V2_B1": dict(_WIDE, depths=(2, 2, 2, 2)),
    "PVT_V2_B2": dict(_WIDE, depths=(3, 4, 6, 3)),
    "PVT_V2_B2_Linear": dict(_WIDE, depths=(3, 4, 6, 3), linear=True),
    "PVT_V2_B3": dict(_WIDE, depths=(3, 4, 18, 3)),
    "PVT_V2_B4": dict(_WIDE, depths=(3, 8, 27, 3)),
    "PVT_V2_B5": dict(_WIDE, mlp_ratios=(4, 4, 4, 4), depths=(3, 6, 40, 3)),
}

BUILDERS = builders(PVTV2, VARIANTS, WEIGHTS)
