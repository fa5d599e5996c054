"""VAN, the Visual Attention Network (Guo et al. 2022, https://arxiv.org/abs/2202.09741): a
convolutional pyramid whose attention is a decomposed large-kernel convolution (LKA);
weight-compatible with PaddleClas 2.6's ``VAN_B0`` ... ``VAN_B3``."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, embedded_stages
from corolla.plugins.backbones._checks import check_rates
from corolla.plugins.backbones._init import constant_parameter, init_convs_fan_out, init_transformer_weights
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._tokens import TokensToMap, map_to_tokens

#: epsilon of the LayerNorm closing each stage
STAGE_NORM_EPS = 1e-6
#: the initial value of each block's per-channel residual scales
LAYER_SCALE_INIT = 1e-2

# --- building blocks -----------------------------------------------------------------------


class DepthwiseConv(nn.Layer):
    """A 3x3 depthwise convolution with bias (``dwconv``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2D(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.dwconv(x)


class ConvMlp(nn.Layer):
    """1x1 conv ``fc1`` -> 3x3 depthwise conv -> GELU -> dropout -> 1x1 conv ``fc2`` -> dropout."""

    def __init__(self, channels: int, hidden: int, *, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Conv2D(channels, hidden, 1)
        self.dwconv = DepthwiseConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2D(hidden, channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class LargeKernelAttention(nn.Layer):
    """LKA: a 5x5 depthwise conv, a 7x7 depthwise conv dilated 3 (together a 21x21 receptive
    field) and a 1x1 conv give an attention map that multiplies the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2D(channels, channels, 5, padding=2, groups=channels)
        self.conv_spatial = nn.Conv2D(channels, channels, 7, padding=9, groups=channels, dilation=3)
        self.conv1 = nn.Conv2D(channels, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * self.conv1(self.conv_spatial(self.conv0(x)))


class SpatialAttention(nn.Layer):
    """1x1 conv -> GELU -> LKA -> 1x1 conv, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2D(channels, channels, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LargeKernelAttention(channels)
        self.proj_2 = nn.Conv2D(channels, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))


class VANBlock(nn.Layer):
    """BatchNorm -> attention and BatchNorm -> conv MLP, each a residual branch scaled per
    channel (``layer_scale_1``, ``layer_scale_2``) and dropped with stochastic depth."""

    def __init__(self, channels: int, *, mlp_ratio: float, drop: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2D(channels)
        self.attn = SpatialAttention(channels)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2D(channels)
        self.mlp = ConvMlp(channels, int(channels * mlp_ratio), drop=drop)
        self.layer_scale_1 = constant_parameter(self, [channels, 1, 1], LAYER_SCALE_INIT)
        self.layer_scale_2 = constant_parameter(self, [channels, 1, 1], LAYER_SCALE_INIT)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


class OverlapPatchEmbed(nn.Layer):
    """A strided convolution with overlapping windows (``proj``), then BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.proj(x))


# --- the model -----------------------------------------------------------------------------


class VAN(Backbone):
    """VAN: four stages, each an overlapping patch embedding (``patch_embed1..4``: 7x7 stride 4,
    then 3x3 stride 2), VAN blocks (``block1..4``) and a LayerNorm over the tokens
    (``norm1..4``); the mean of the last stage's tokens goes to the classifier ``head``.

    ``embed_dims``, ``depths``, ``mlp_ratios``: per stage; ``drop_rate``: dropout in the MLPs;
    ``drop_path_rate``: the stochastic-depth rate of the last block (rising linearly from 0).
    ``lr_mult_list`` has 5 values: the stem (``patch_embed1``), then each stage;
    ``return_stages`` gives the four stage maps ``[N, C, H, W]`` (strides 4, 8, 16, 32).
    """

    def __init__(
        self,
        *,
        embed_dims: Sequence[int],
        depths: Sequence[int],
        mlp_ratios: Sequence[float],
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        check_rates(contract["name"], drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        rates = iter(drop_path_rates(drop_path_rate, sum(depths)))
        in_channels = 3
        for i, (dim, depth, mlp_ratio) in enumerate(zip(embed_dims, depths, mlp_ratios), start=1):
            kernel_size, stride = (7, 4) if i == 1 else (3, 2)
            setattr(self, f"patch_embed{i}", OverlapPatchEmbed(in_channels, dim, kernel_size=kernel_size, stride=stride))
            blocks = [VANBlock(dim, mlp_ratio=mlp_ratio, drop=drop_rate, drop_path=next(rates)) for _ in range(depth)]
            setattr(self, f"block{i}", nn.LayerList(blocks))
            setattr(self, f"norm{i}", nn.LayerNorm(dim, epsilon=STAGE_NORM_EPS))
            in_channels = dim
        self.num_stages = len(embed_dims)
        self.stage_maps = nn.LayerList([TokensToMap() for _ in range(self.num_stages)])
        self.head = nn.Linear(embed_dims[-1], self.class_num)

        init_transformer_weights(self)
        init_convs_fan_out(self, per_group=True, zero_bias=True)
        stages = [self._stage(i) for i in range(1, self.num_stages + 1)]
        self.finish(lr_groups=embedded_stages(stages), stages=list(self.stage_maps))

    def _stage(self, i: int) -> list[nn.Layer]:
        return [getattr(self, f"patch_embed{i}"), getattr(self, f"block{i}"), getattr(self, f"norm{i}")]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for i in range(1, self.num_stages + 1):
            patch_embed, blocks, norm = self._stage(i)
            x = patch_embed(x)
            height, width = x.shape[2:]
            for block in blocks:
                x = block(x)
            x = self.stage_maps[i - 1](norm(map_to_tokens(x)), height, width)
        return self.head(x.mean(axis=[2, 3]))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its VAN docs) --------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"VAN_B0": 0.7535, "VAN_B1": 0.8102, "VAN_B2": 0.8280, "VAN_B3": 0.8389},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "VAN_B0": dict(embed_dims=(32, 64, 160, 256), depths=(3, 3, 5, 2), mlp_ratios=(8, 8, 4, 4)),
    "VAN_B1": dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 4, 2), mlp_ratios=(8, 8, 4, 4)),
    "VAN_B2": dict(embed_dims=(64, 128, 320, 512), depths=(3, 3, 12, 3), mlp_ratios=(8, 8, 4, 4)),
    "VAN_B3": dict(embed_dims=(64, 128, 320, 512), depths=(3, 5, 27, 3), mlp_ratios=(8, 8, 4, 4)),
}

BUILDERS = builders(VAN, VARIANTS, WEIGHTS)
