"""DSNet (Mao et al. 2021, https://arxiv.org/abs/2105.14734): the Dual-Stream Network, whose
blocks split the channels into a full-resolution convolutional stream and a downsampled
self-attention stream and let each attend to the other, weight-compatible with PaddleClas
2.6's ``DSNet_tiny/small/base``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn
from paddle.nn import functional as F

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, embedded_stages
from corolla.plugins.backbones._checks import check_rate
from corolla.plugins.backbones._layers import LeanBatchNorm2D
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates

EMBED_DIMS = (64, 128, 320, 512)
NUM_HEADS = (1, 2, 5, 8)
#: each stage's attention stream runs at 1/factor of its feature map's size
ATTENTION_DOWNSAMPLE = (8, 4, 2, 2)
MLP_RATIO = 4
#: PaddleClas fixes the dropout on the attention weights at 0.1
ATTENTION_DROPOUT = 0.1

# --- building blocks -----------------------------------------------------------------------


def split_heads(qkv: paddle.Tensor, heads: int) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """[B, N, 3C] -> query, key and value, each [B, heads, N, C / heads]."""
    batch, tokens, channels = qkv.shape
    parts = qkv.reshape([batch, tokens, 3, heads, channels // 3 // heads]).transpose([2, 0, 3, 1, 4])
    return parts[0], parts[1], parts[2]


class HeadAttention(nn.Layer):
    """Scaled dot-product attention of split heads, dropout on the weights and the output; no parameters."""

    def __init__(self, head_dim: int, *, drop: float) -> None:
        super().__init__()
        self.scale = head_dim**-0.5
        self.attn_drop = nn.Dropout(ATTENTION_DROPOUT)
        self.proj_drop = nn.Dropout(drop)

    def forward(self, query: paddle.Tensor, key: paddle.Tensor, value: paddle.Tensor) -> paddle.Tensor:
        weights = self.attn_drop(F.softmax(query.matmul(key, transpose_y=True) * self.scale, axis=-1))
        out = weights.matmul(value).transpose([0, 2, 1, 3])
        return self.proj_drop(out.reshape([out.shape[0], out.shape[1], -1]))


class Mlp(nn.Layer):
    """1x1 conv, GELU, dropout, 1x1 conv, dropout (``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int, *, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Conv2D(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2D(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MixBlock(nn.Layer):
    """The dual-stream block. After a depthwise positional conv and BN + 1x1 conv, the first
    ``dim - dim // 2`` channels go, downsampled ``downsample`` times, through self-attention;
    the other ``dim // 2`` through a depthwise 3x3 conv. Each stream then attends to the other
    (co-attention), the two are joined (convolutional first) by a 1x1 conv into the residual,
    and a BN + 1x1-conv MLP follows."""

    def __init__(self, dim: int, heads: int, *, downsample: int, drop: float, drop_path: float) -> None:
        super().__init__()
        self.heads, self.downsample = heads, downsample
        self.dim_conv = dim // 2
        self.dim_sa = dim - self.dim_conv
        self.pos_embed = nn.Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = LeanBatchNorm2D(dim)
        self.conv1 = nn.Conv2D(dim, dim, 1)
        self.conv2 = nn.Conv2D(dim, dim, 1)
        self.norm_conv1 = LeanBatchNorm2D(self.dim_conv)
        self.norm_sa1 = nn.LayerNorm(self.dim_sa)
        self.conv = nn.Conv2D(self.dim_conv, self.dim_conv, 3, padding=1, groups=self.dim_conv)
        self.channel_up = nn.Linear(self.dim_sa, 3 * self.dim_sa)
        self.cross_channel_up_conv = nn.Conv2D(self.dim_conv, 3 * self.dim_conv, 1)
        self.cross_channel_up_sa = nn.Linear(self.dim_sa, 3 * self.dim_sa)
        self.fuse_channel_conv = nn.Linear(self.dim_conv, self.dim_conv)
        self.fuse_channel_sa = nn.Linear(self.dim_sa, self.dim_sa)
        # both attentions scale by the attention stream's head size, as PaddleClas does
        self.attn = HeadAttention(self.dim_sa // heads, drop=drop)
        self.cross_attn = HeadAttention(self.dim_sa // heads, drop=drop)
        self.norm_conv2 = LeanBatchNorm2D(self.dim_conv)
        self.norm_sa2 = nn.LayerNorm(self.dim_sa)
        self.drop_path = DropPath(drop_path)
        self.norm2 = LeanBatchNorm2D(dim)
        self.mlp = Mlp(dim, int(dim * MLP_RATIO), drop=drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.pos_embed(x)
        batch, _, height, width = x.shape
        residual = x
        x = self.conv1(self.norm1(x))
        sa, conv = x[:, : self.dim_sa], x[:, self.dim_sa :]

        conv = conv + self.conv(self.norm_conv1(conv))
        sa = F.interpolate(sa, size=(height // self.downsample, width // self.downsample), mode="bilinear")
        small_height, small_width = sa.shape[2:]
        sa = sa.flatten(2).transpose([0, 2, 1])
        sa = sa + self.attn(*split_heads(self.channel_up(self.norm_sa1(sa)), self.heads))

        conv_q, conv_k, conv_v = split_heads(
            self.cross_channel_up_conv(self.norm_conv2(conv)).flatten(2).transpose([0, 2, 1]), self.heads
        )
        sa_q, sa_k, sa_v = split_heads(self.cross_channel_up_sa(self.norm_sa2(sa)), self.heads)
        from_sa = self.fuse_channel_conv(self.cross_attn(conv_q, sa_k, sa_v))
        conv = conv + from_sa.reshape([batch, height, width, self.dim_conv]).transpose([0, 3, 1, 2])
        sa = sa + self.fuse_channel_sa(self.cross_attn(sa_q, conv_k, conv_v))
        sa = sa.reshape([batch, small_height, small_width, self.dim_sa]).transpose([0, 3, 1, 2])
        sa = F.interpolate(sa, size=(height, width), mode="bilinear")

        x = residual + self.drop_path(self.conv2(paddle.concat([conv, sa], axis=1)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Layer):
    """A ``size`` x ``size`` convolution of stride ``size`` (``proj``)."""

    def __init__(self, in_channels: int, out_channels: int, size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(in_channels, out_channels, size, stride=size)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.proj(x)


# --- the model -----------------------------------------------------------------------------


class DSNet(Backbone):
    """DSNet: four stages, each a patch embedding (4x4/4, then 2x2/2) and :class:`MixBlock`\\ s
    of 64, 128, 320 and 512 channels (``blocks1..blocks4``), then BatchNorm, global pooling and
    ``head``. It runs at any input size from 64; PaddleClas's asserts 224.

    ``depths``: blocks per stage; ``drop_rate``: dropout after the stem, the attentions and the
    MLPs; ``drop_path_rate``: stochastic depth. PaddleClas gives block ``i`` of every stage the
    rate of block ``i`` of a linear schedule from 0 over all blocks (so each stage restarts
    near 0), and so does corolla. ``lr_mult_list`` has 5 values: the stem, then each stage (with
    its patch embedding); ``return_stages`` picks stages 0-3.
    """

    def __init__(
        self,
        *,
        depths: tuple[int, int, int, int],
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        drop = check_rate(name, "drop_rate", drop_rate)
        rates = drop_path_rates(check_rate(name, "drop_path_rate", drop_path_rate), sum(depths))

        channels = (3, *EMBED_DIMS)
        stages = []
        for i, depth in enumerate(depths):
            self.add_sublayer(f"patch_embed{i + 1}", PatchEmbed(channels[i], channels[i + 1], 4 if i == 0 else 2))
            blocks = nn.Sequential(
                *(
                    MixBlock(
                        EMBED_DIMS[i], NUM_HEADS[i], downsample=ATTENTION_DOWNSAMPLE[i], drop=drop, drop_path=rates[j]
                    )
                    for j in range(depth)
                )
            )
            stages.append(self.add_sublayer(f"blocks{i + 1}", blocks))
        self.pos_drop = nn.Dropout(drop)
        self.norm = LeanBatchNorm2D(EMBED_DIMS[-1])
        self.head = nn.Linear(EMBED_DIMS[-1], self.class_num)

        embeds = [getattr(self, f"patch_embed{i + 1}") for i in range(len(depths))]
        self.finish(lr_groups=embedded_stages(list(zip(embeds, stages))), stages=stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.blocks1(self.pos_drop(self.patch_embed1(x)))
        x = self.blocks2(self.patch_embed2(x))
        x = self.blocks3(self.patch_embed3(x))
        x = self.blocks4(self.patch_embed4(x))
        return self.head(self.norm(x).flatten(2).mean(-1))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its DSNet docs) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"DSNet_tiny": 0.792, "DSNet_small": 0.814, "DSNet_base": 0.818},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "DSNet_tiny": dict(depths=(2, 2, 4, 1)),
    "DSNet_small": dict(depths=(3, 4, 8, 3)),
    "DSNet_base": dict(depths=(3, 4, 28, 3)),
}

#: PaddleClas's DSNet accepts only 224x224 input, and the parity tests run both nets on the
#: same images; corolla's own runs from 64x64 (the last stage's attention then sees 1x1)
MIN_INPUT_SIZE = 224

BUILDERS = builders(DSNet, VARIANTS, WEIGHTS)
