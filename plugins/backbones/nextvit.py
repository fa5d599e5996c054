"""Next-ViT (Li et al. 2022, https://arxiv.org/abs/2207.05501): a deployment-friendly hybrid of
convolution blocks (NCB, multi-head convolutional attention) and transformer blocks (NTB,
efficient self-attention beside a convolutional branch); weight-compatible with PaddleClas
2.6's ``NextViT_{small,base,large}_{224,384}``."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._checks import check_rates
from corolla.plugins.backbones._init import TRUNC_NORMAL, init_transformer_weights, init_weights
from corolla.plugins.backbones._layers import make_divisible
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._tokens import map_to_tokens, tokens_to_map
from corolla.plugins.backbones._transformer import attend, merge_heads, split_heads

#: channels of the stem's convolutions
STEM_CHANNELS = (64, 32, 64)
#: width of an attention head (and of a group of the grouped 3x3 convs)
HEAD_DIM = 32
#: stride of each stage's first block
STAGE_STRIDES = (1, 2, 2, 2)
#: per stage: the transformer block's keys and values come from tokens pooled sr^2 at a time
SR_RATIOS = (8, 4, 2, 1)
#: share of a transformer block's output channels that come from self-attention
MIX_BLOCK_RATIO = 0.75

# --- building blocks -----------------------------------------------------------------------


class ConvBNReLU(nn.Layer):
    """3x3 conv (``conv``, bias-free) -> BatchNorm (``norm``) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, 3, stride=stride, padding=1, bias_attr=False)
        self.norm = nn.BatchNorm2D(out_channels)
        self.act = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act(self.norm(self.conv(x)))


class PatchEmbed(nn.Layer):
    """Changes resolution or width where a block needs it: 2x2 average pooling when ``stride``
    is 2, then a 1x1 conv with BatchNorm when pooling or the width changes; else nothing."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.avgpool = nn.AvgPool2D(2, stride=2, ceil_mode=True) if stride == 2 else None
        self.conv = self.norm = None
        if stride == 2 or in_channels != out_channels:
            self.conv = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)
            self.norm = nn.BatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.avgpool is not None:
            x = self.avgpool(x)
        return x if self.conv is None else self.norm(self.conv(x))


class ConvAttention(nn.Layer):
    """MHCA, multi-head convolutional attention: a grouped 3x3 conv (one group per head),
    BatchNorm, ReLU and a 1x1 ``projection``, all bias-free."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.group_conv3x3 = nn.Conv2D(channels, channels, 3, padding=1, groups=channels // HEAD_DIM, bias_attr=False)
        self.norm = nn.BatchNorm2D(channels)
        self.act = nn.ReLU()
        self.projection = nn.Conv2D(channels, channels, 1, bias_attr=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.projection(self.act(self.norm(self.group_conv3x3(x))))


class ConvMlp(nn.Layer):
    """1x1 conv -> ReLU -> dropout -> 1x1 conv -> dropout; the hidden width is ``mlp_ratio``
    times the input's, rounded to a multiple of 32."""

    def __init__(self, channels: int, mlp_ratio: float, *, drop: float) -> None:
        super().__init__()
        hidden = make_divisible(channels * mlp_ratio, 32)
        self.conv1 = nn.Conv2D(channels, hidden, 1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2D(hidden, channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.conv2(self.drop(self.act(self.conv1(x)))))


class NCB(nn.Layer):
    """Next Convolution Block: the patch embedding, then convolutional attention and
    BatchNorm -> conv MLP (ratio 3), each a residual branch with stochastic depth."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, drop_path: float, drop: float) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, out_channels, stride)
        self.mhca = ConvAttention(out_channels)
        self.attention_path_dropout = DropPath(drop_path)
        self.norm = nn.BatchNorm2D(out_channels)
        self.mlp = ConvMlp(out_channels, 3, drop=drop)
        self.mlp_path_dropout = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.patch_embed(x)
        x = x + self.attention_path_dropout(self.mhca(x))
        return x + self.mlp_path_dropout(self.mlp(self.norm(x)))


class EfficientSelfAttention(nn.Layer):
    """E-MHSA: multi-head self-attention (separate ``q``, ``k``, ``v`` projections) whose keys
    and values come from the tokens average-pooled ``sr_ratio``^2 at a time, then BatchNorm."""

    def __init__(self, dim: int, *, sr_ratio: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.num_heads = dim // HEAD_DIM
        self.scale = HEAD_DIM**-0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)
        self.sr = self.norm = None
        if sr_ratio > 1:
            self.sr = nn.AvgPool1D(sr_ratio**2, stride=sr_ratio**2)
            self.norm = nn.BatchNorm1D(dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        source = x
        if self.sr is not None:
            source = self.norm(self.sr(x.transpose([0, 2, 1]))).transpose([0, 2, 1])
        q = split_heads(self.q(x), self.num_heads)
        k = split_heads(self.k(source), self.num_heads)
        v = split_heads(self.v(source), self.num_heads)
        out = attend(q, k, v, self.scale, self.attn_drop)
        return self.proj_drop(self.proj(merge_heads(out)))


class NTB(nn.Layer):
    """Next Transformer Block: BatchNorm -> efficient self-attention on the embedded input
    (a residual branch), a convolutional-attention branch from its projection, the two
    concatenated, then BatchNorm -> conv MLP (ratio 2)."""

    def __init__(
        self, in_channels: int, out_channels: int, *, stride: int, sr_ratio: int, drop_path: float, drop: float, attn_drop: float
    ) -> None:
        super().__init__()
        attention_channels = make_divisible(int(out_channels * MIX_BLOCK_RATIO), 32)
        conv_channels = out_channels - attention_channels
        self.patch_embed = PatchEmbed(in_channels, attention_channels, stride)
        self.norm1 = nn.BatchNorm2D(attention_channels)
        self.e_mhsa = EfficientSelfAttention(attention_channels, sr_ratio=sr_ratio, attn_drop=attn_drop, proj_drop=drop)
        self.mhsa_path_dropout = DropPath(drop_path * MIX_BLOCK_RATIO)
        self.projection = PatchEmbed(attention_channels, conv_channels)
        self.mhca = ConvAttention(conv_channels)
        self.mhca_path_dropout = DropPath(drop_path * (1 - MIX_BLOCK_RATIO))
        self.norm2 = nn.BatchNorm2D(out_channels)
        self.mlp = ConvMlp(out_channels, 2, drop=drop)
        self.mlp_path_dropout = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.patch_embed(x)
        height, width = x.shape[2:]
        attention = self.e_mhsa(map_to_tokens(self.norm1(x)))
        x = x + tokens_to_map(self.mhsa_path_dropout(attention), height, width)
        conv = self.projection(x)
        conv = conv + self.mhca_path_dropout(self.mhca(conv))
        x = paddle.concat([x, conv], axis=1)
        return x + self.mlp_path_dropout(self.mlp(self.norm2(x)))


def stage_layout(depths: Sequence[int]) -> list[list[tuple[type[nn.Layer], int]]]:
    """Per stage, each block's type and output channels (Next-ViT's hybrid strategy: the last
    block of stages 1 and 3, and every fifth of stage 2, is a transformer block)."""
    first, second, third, fourth = depths
    return [
        [(NCB, 96)] * first,
        [(NCB, 192)] * (second - 1) + [(NTB, 256)],
        ([(NCB, 384)] * 4 + [(NTB, 512)]) * (third // 5),
        [(NCB, 768)] * (fourth - 1) + [(NTB, 1024)],
    ]


# --- the model -----------------------------------------------------------------------------


class NextViT(Backbone):
    """Next-ViT: a stem of four 3x3 convs (stride 4 in all), four stages of NCB and NTB blocks
    (``features``; stride 1, 2, 2, 2), BatchNorm ``norm``, global pooling and the classifier
    ``proj_head``.

    ``depths``: blocks per stage; ``path_dropout``: the stochastic-depth rate of the last block
    (rising linearly from 0; each variant fixes it, as PaddleClas does); ``drop``, ``attn_drop``:
    dropout after projections and on attention weights.
    ``lr_mult_list`` has 5 values: the stem, then each stage; ``return_stages`` gives the four
    stage maps ``[N, C, H, W]`` (strides 4, 8, 16, 32).
    """

    def __init__(
        self, *, depths: Sequence[int], path_dropout: float, drop: float = 0.0, attn_drop: float = 0.0, **contract: Any
    ) -> None:
        super().__init__(**contract)
        check_rates(contract["name"], path_dropout=path_dropout, drop=drop, attn_drop=attn_drop)
        self.stem = nn.Sequential(
            ConvBNReLU(3, STEM_CHANNELS[0], stride=2),
            ConvBNReLU(STEM_CHANNELS[0], STEM_CHANNELS[1], stride=1),
            ConvBNReLU(STEM_CHANNELS[1], STEM_CHANNELS[2], stride=1),
            ConvBNReLU(STEM_CHANNELS[2], STEM_CHANNELS[2], stride=2),
        )
        rates = iter(drop_path_rates(path_dropout, sum(depths)))
        blocks, stage_blocks = [], []
        channels = STEM_CHANNELS[-1]
        for stage, layout in enumerate(stage_layout(depths)):
            stage_blocks.append([])
            for i, (block_type, out_channels) in enumerate(layout):
                stride = STAGE_STRIDES[stage] if i == 0 else 1
                if block_type is NCB:
                    block = NCB(channels, out_channels, stride=stride, drop_path=next(rates), drop=drop)
                else:
                    block = NTB(
                        channels, out_channels, stride=stride, sr_ratio=SR_RATIOS[stage], drop_path=next(rates),
                        drop=drop, attn_drop=attn_drop,
                    )
                blocks.append(block)
                stage_blocks[-1].append(block)
                channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm2D(channels)
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.proj_head = nn.Sequential(nn.Linear(channels, self.class_num))

        init_transformer_weights(self)
        init_weights(self, conv=TRUNC_NORMAL)
        self.finish(
            lr_groups={"stem": [self.stem], **{f"stage{i}": layers for i, layers in enumerate(stage_blocks)}},
            stages=[layers[-1] for layers in stage_blocks],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.features(self.stem(x))
        return self.proj_head(self.avgpool(self.norm(x)).flatten(1))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its NextViT docs) -----------------
# The _ssld files were trained on data mined as SSLD mines it, not distilled with SSLD.

_URL = MODEL_ZOO_URL + "{}_pretrained.pdparams"
WEIGHTS = weights_table(
    _URL,
    {
        "NextViT_small_224": 0.8248,
        "NextViT_base_224": 0.8324,
        "NextViT_large_224": 0.8363,
        "NextViT_small_224_ssld": 0.8472,
        "NextViT_base_224_ssld": 0.8500,
        "NextViT_large_224_ssld": 0.8536,
    },
) | weights_table(
    _URL,
    {
        "NextViT_small_384": 0.8401,
        "NextViT_base_384": 0.8465,
        "NextViT_large_384": 0.8492,
        "NextViT_small_384_ssld": 0.8597,
        "NextViT_base_384_ssld": 0.8634,
        "NextViT_large_384_ssld": 0.8654,
    },
    input_size=384,
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "NextViT_small_224": dict(depths=(3, 4, 10, 3), path_dropout=0.1),
    "NextViT_base_224": dict(depths=(3, 4, 20, 3), path_dropout=0.2),
    "NextViT_large_224": dict(depths=(3, 4, 30, 3), path_dropout=0.2),
    "NextViT_small_384": dict(depths=(3, 4, 10, 3), path_dropout=0.1),
    "NextViT_base_384": dict(depths=(3, 4, 20, 3), path_dropout=0.2),
    "NextViT_large_384": dict(depths=(3, 4, 30, 3), path_dropout=0.2),
}

BUILDERS = builders(NextViT, VARIANTS, WEIGHTS)
