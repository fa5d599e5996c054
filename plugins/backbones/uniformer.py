"""UniFormer (Li et al. 2022, https://arxiv.org/abs/2201.09450): convolutional relation
aggregation in the two shallow stages, self-attention in the two deep ones, each block with a
depthwise-conv position encoding; weight-compatible with PaddleClas 2.6's ``UniFormer_small``,
``UniFormer_small_plus``, ``UniFormer_small_plus_dim64``, ``UniFormer_base`` and
``UniFormer_base_ls``."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, embedded_stages
from corolla.plugins.backbones._checks import check_rates
from corolla.plugins.backbones._init import constant_parameter, init_transformer_weights
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._tokens import map_to_tokens, tokens_to_map
from corolla.plugins.backbones._transformer import Attention, Mlp

#: epsilon of the LayerNorms in the attention blocks
NORM_EPS = 1e-6
#: the initial value of the residual scales of ``UniFormer_base_ls``
LAYER_SCALE_INIT = 1e-6
#: the width of each stage, in every variant
EMBED_DIMS = (64, 128, 320, 512)
#: the width of every MLP's hidden layer, relative to its input
MLP_RATIO = 4

# --- building blocks -----------------------------------------------------------------------


class ConvMlp(nn.Layer):
    """1x1 conv ``fc1_conv`` -> GELU -> dropout -> 1x1 conv ``fc2_conv`` -> dropout."""

    def __init__(self, channels: int, hidden: int, *, drop: float) -> None:
        super().__init__()
        self.fc1_conv = nn.Conv2D(channels, hidden, 1)
        self.act = nn.GELU()
        self.fc2_conv = nn.Conv2D(hidden, channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.fc2_conv(self.drop(self.act(self.fc1_conv(x)))))


class ConvBlock(nn.Layer):
    """Local relation aggregation: position encoding (3x3 depthwise conv ``pos_embed``), then
    BatchNorm -> 1x1 conv -> 5x5 depthwise conv (``attn``) -> 1x1 conv, then BatchNorm -> conv MLP."""

    def __init__(self, dim: int, *, mlp_ratio: float, drop: float, drop_path: float) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2D(dim)
        self.conv1 = nn.Conv2D(dim, dim, 1)
        self.conv2 = nn.Conv2D(dim, dim, 1)
        self.attn = nn.Conv2D(dim, dim, 5, padding=2, groups=dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2D(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class AttentionBlock(nn.Layer):
    """Global relation aggregation: position encoding (3x3 depthwise conv ``pos_embed``), then a
    pre-norm transformer block over the map's tokens; with ``layer_scale`` each residual
    branch is scaled per channel (``gamma_1``, ``gamma_2``)."""

    def __init__(
        self, dim: int, *, num_heads: int, mlp_ratio: float, layer_scale: bool, drop: float, attn_drop: float, drop_path: float
    ) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias=True, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.gamma_1 = constant_parameter(self, [dim], LAYER_SCALE_INIT) if layer_scale else None
        self.gamma_2 = constant_parameter(self, [dim], LAYER_SCALE_INIT) if layer_scale else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.pos_embed(x)
        height, width = x.shape[2:]
        tokens = map_to_tokens(x)
        attn = self.attn(self.norm1(tokens))
        if self.gamma_1 is not None:
            attn = self.gamma_1 * attn
        tokens = tokens + self.drop_path(attn)
        mlp = self.mlp(self.norm2(tokens))
        if self.gamma_2 is not None:
            mlp = self.gamma_2 * mlp
        return tokens_to_map(tokens + self.drop_path(mlp), height, width)


class PatchEmbed(nn.Layer):
    """Non-overlapping patches: a convolution with stride = kernel (``proj_conv``), then
    LayerNorm over the channels (``norm``)."""

    def __init__(self, in_channels: int, out_channels: int, patch_size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(out_channels)
        self.proj_conv = nn.Conv2D(in_channels, out_channels, patch_size, stride=patch_size)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.proj_conv(x)
        height, width = x.shape[2:]
        return tokens_to_map(self.norm(map_to_tokens(x)), height, width)


class ConvEmbed(nn.Layer):
    """The overlapping embedding of the ``_plus`` variants (``proj``): 3x3 stride-2 convs with
    BatchNorm, two (with GELU between them) for the stem, one between stages."""

    def __init__(self, in_channels: int, out_channels: int, *, stem: bool) -> None:
        super().__init__()
        if stem:
            self.proj = nn.Sequential(
                nn.Conv2D(in_channels, out_channels // 2, 3, stride=2, padding=1),
                nn.BatchNorm2D(out_channels // 2),
                nn.GELU(),
                nn.Conv2D(out_channels // 2, out_channels, 3, stride=2, padding=1),
                nn.BatchNorm2D(out_channels),
            )
        else:
            self.proj = nn.Sequential(
                nn.Conv2D(in_channels, out_channels, 3, stride=2, padding=1), nn.BatchNorm2D(out_channels)
            )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.proj(x)


# --- the model -----------------------------------------------------------------------------


class UniFormer(Backbone):
    """UniFormer: four stages, each an embedding (``patch_embed1..4``: 4x4 patches, then 2x2;
    or, with ``conv_stem``, strided 3x3 convs) and blocks (``blocks1..4``: convolutional in
    stages 0-1, attention in stages 2-3); then BatchNorm ``norm``, global pooling and the
    classifier ``head``.

    ``depths``: blocks per stage (64, 128, 320, 512 channels); ``head_dim``: the width of an
    attention head;
    ``layer_scale``: scale each attention block's residual branches per channel.
    ``drop_rate``, ``attn_drop_rate``: dropout after projections and on attention weights
    (each variant fixes its stochastic-depth rate, as PaddleClas does).
    ``lr_mult_list`` has 5 values: the stem (``patch_embed1``), then each stage;
    ``return_stages`` gives the four stage maps ``[N, C, H, W]`` (strides 4, 8, 16, 32).
    """

    def __init__(
        self,
        *,
        depths: Sequence[int],
        head_dim: int,
        conv_stem: bool,
        layer_scale: bool,
        drop_path_rate: float,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        check_rates(contract["name"], drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        rates = iter(drop_path_rates(drop_path_rate, sum(depths)))
        self.pos_drop = nn.Dropout(drop_rate)
        in_channels = 3
        for stage, (dim, depth) in enumerate(zip(EMBED_DIMS, depths)):
            if conv_stem:
                embed = ConvEmbed(in_channels, dim, stem=stage == 0)
            else:
                embed = PatchEmbed(in_channels, dim, 4 if stage == 0 else 2)
            setattr(self, f"patch_embed{stage + 1}", embed)
            if stage < 2:
                blocks = [ConvBlock(dim, mlp_ratio=MLP_RATIO, drop=drop_rate, drop_path=next(rates)) for _ in range(depth)]
            else:
                blocks = [
                    AttentionBlock(
                        dim, num_heads=dim // head_dim, mlp_ratio=MLP_RATIO, layer_scale=layer_scale,
                        drop=drop_rate, attn_drop=attn_drop_rate, drop_path=next(rates),
                    )
                    for _ in range(depth)
                ]
            setattr(self, f"blocks{stage + 1}", nn.LayerList(blocks))
            in_channels = dim
        self.num_stages = len(EMBED_DIMS)
        self.norm = nn.BatchNorm2D(EMBED_DIMS[-1])
        self.head = nn.Linear(EMBED_DIMS[-1], self.class_num)

        init_transformer_weights(self)
        stages = [self._stage(i) for i in range(1, self.num_stages + 1)]
        self.finish(lr_groups=embedded_stages(stages), stages=[blocks[-1] for _, blocks in stages])

    def _stage(self, i: int) -> list[nn.Layer]:
        return [getattr(self, f"patch_embed{i}"), getattr(self, f"blocks{i}")]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for i in range(1, self.num_stages + 1):
            embed, blocks = self._stage(i)
            x = embed(x)
            if i == 1:
                x = self.pos_drop(x)
            for block in blocks:
                x = block(x)
        return self.head(self.norm(x).mean(axis=[2, 3]))


def _smallest_input(name: str) -> int:
    """PaddleClas's UniFormers with 4x4 patch embeddings take only 224x224 input (corolla's
    take any size), so the parity tests need it; the ``_plus`` variants take any size from 32."""
    return 32 if "_plus" in name else 224


MIN_INPUT_SIZE = _smallest_input

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its UniFormer docs) ---------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "UniFormer_small": 0.8294,
        "UniFormer_small_plus": 0.8329,
        "UniFormer_small_plus_dim64": 0.8325,
        "UniFormer_base": 0.8376,
        "UniFormer_base_ls": 0.8398,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "UniFormer_small": dict(depths=(3, 4, 8, 3), head_dim=64, conv_stem=False, layer_scale=False, drop_path_rate=0.1),
    "UniFormer_small_plus": dict(depths=(3, 5, 9, 3), head_dim=32, conv_stem=True, layer_scale=False, drop_path_rate=0.1),
    "UniFormer_small_plus_dim64": dict(depths=(3, 5, 9, 3), head_dim=64, conv_stem=True, layer_scale=False, drop_path_rate=0.1),
    "UniFormer_base": dict(depths=(5, 8, 20, 7), head_dim=64, conv_stem=False, layer_scale=False, drop_path_rate=0.3),
    "UniFormer_base_ls": dict(depths=(5, 8, 20, 7), head_dim=64, conv_stem=False, layer_scale=True, drop_path_rate=0.3),
}

BUILDERS = builders(UniFormer, VARIANTS, WEIGHTS)
