"""MobileViTV3 (Wadekar & Chaurasia 2022, https://arxiv.org/abs/2209.15159): MobileViT blocks
whose fusion sees local and global features together and adds the block's input back, on
MobileViT (``XXS``, ``XS``, ``S``; ``_L2`` with two blocks fewer in layer 4) and on
MobileViTV2 (``x0_5``, ``x0_75``, ``x1_0``), weight-compatible with PaddleClas 2.6's
``MobileViTV3_*``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn
from paddle.nn import functional as F

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import builders
from corolla.plugins.backbones._checks import check_rate
from corolla.plugins.backbones._init import init_like_cvnets, truncated_normal
from corolla.plugins.backbones._mobilevit import (
    ConvNormAct,
    InvertedResidual,
    LayeredMobileViT,
    LinearAttentionBlock,
    from_tokens,
    mobilenet_layer,
    multi_head_attention,
    padded_size,
    to_tokens,
    v2_layers,
)

STEM_CHANNELS = 16
HEADS = 4
#: the widest the 1x1 convolution before the classifier gets
MAX_FEATURES = 960

# --- building blocks -----------------------------------------------------------------------


class MultiHeadAttention(nn.Layer):
    """Self-attention over [B, N, C] tokens: ``qkv_proj`` and ``out_proj`` linear layers."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.out_proj(multi_head_attention(self.qkv_proj(x), self.heads, scale_queries=False))


class TransformerEncoder(nn.Layer):
    """Pre-norm transformer layer: LayerNorm + attention (``pre_norm_mha``) and LayerNorm + SiLU
    MLP (``pre_norm_ffn``), each residual, with ``dropout`` after each branch."""

    def __init__(self, dim: int, ffn_dim: int, *, heads: int, dropout: float) -> None:
        super().__init__()
        self.pre_norm_mha = nn.Sequential(nn.LayerNorm(dim), MultiHeadAttention(dim, heads), nn.Dropout(dropout))
        self.pre_norm_ffn = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, ffn_dim),
            nn.Silu(),
            nn.Dropout(0.0),  # PaddleClas's FFN dropout (always 0) keeps the next layer at index 4
            nn.Linear(ffn_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.pre_norm_mha(x)
        return x + self.pre_norm_ffn(x)


class FusionBlock(nn.Layer):
    """The MobileViTV3 block: depthwise 3x3 conv-BN-SiLU and 1x1 conv to ``dim`` (``local_rep``);
    transformers over the 2x2 patches (``global_rep``); a 1x1 conv-BN-SiLU back (``conv_proj``);
    a 1x1 conv-BN-SiLU of local and global features together (``fusion``); plus the input.
    Odd maps are resized (bilinear) to whole patches and back."""

    def __init__(self, channels: int, dim: int, *, depth: int, dropout: float) -> None:
        super().__init__()
        self.local_rep = nn.Sequential(
            ("conv_3x3", ConvNormAct(channels, channels, 3, groups=channels)),
            ("conv_1x1", ConvNormAct(channels, dim, norm=False, act=False)),
        )
        self.global_rep = nn.Sequential(
            *(TransformerEncoder(dim, 2 * dim, heads=HEADS, dropout=dropout) for _ in range(depth)), nn.LayerNorm(dim)
        )
        self.conv_proj = ConvNormAct(dim, channels)
        self.fusion = ConvNormAct(dim + channels, channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        local = self.local_rep(x)
        height, width = local.shape[2:]
        size = [padded_size(height), padded_size(width)]
        resized = size != [height, width]
        tokens = to_tokens(F.interpolate(local, size=size, mode="bilinear") if resized else local)
        global_ = from_tokens(self.global_rep(tokens), *size)
        if resized:
            global_ = F.interpolate(global_, size=[height, width], mode="bilinear")
        return x + self.fusion(paddle.concat([local, self.conv_proj(global_)], axis=1))


# --- the models ----------------------------------------------------------------------------


class MobileViTV3(LayeredMobileViT):
    """MobileViTV3 on MobileViT: a 3x3/2 stem ``conv_1`` (16 channels); MobileNetV2 layers
    ``layer_1`` (1 block) and ``layer_2`` (3 blocks, stride 2); ``layer_3..layer_5``, each a
    strided MobileNetV2 block and a :class:`FusionBlock`; a 1x1 conv-BN-SiLU ``conv_1x1_exp``
    (4x wider, at most 960) and ``classifier``.

    ``channels``: each layer's output; ``transformer_dims``/``transformer_depths``: width and
    depth of the transformers of layers 3-5; ``expand_ratio``: of the MobileNetV2 blocks;
    ``dropout``: in the transformers; ``classifier_dropout``: before ``fc``. ``lr_mult_list``
    has 6 values: ``conv_1``, then each layer; ``return_stages`` picks layers 0-4.
    """

    def __init__(
        self,
        *,
        channels: tuple[int, int, int, int, int],
        transformer_dims: tuple[int, int, int],
        transformer_depths: tuple[int, int, int],
        expand_ratio: int,
        dropout: float = 0.1,
        classifier_dropout: float = 0.1,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        dropout = check_rate(name, "dropout", dropout)
        classifier_dropout = check_rate(name, "classifier_dropout", classifier_dropout)

        stem = ConvNormAct(3, STEM_CHANNELS, 3, stride=2)
        layers: list[nn.Layer] = [
            mobilenet_layer(STEM_CHANNELS, channels[0], blocks=1, stride=1, expand_ratio=expand_ratio),
            mobilenet_layer(channels[0], channels[1], blocks=3, stride=2, expand_ratio=expand_ratio),
        ]
        for in_channels, out_channels, dim, depth in zip(
            channels[1:], channels[2:], transformer_dims, transformer_depths
        ):
            layers.append(
                nn.Sequential(
                    InvertedResidual(in_channels, out_channels, stride=2, expand_ratio=expand_ratio),
                    FusionBlock(out_channels, dim, depth=depth, dropout=dropout),
                )
            )
        features = min(4 * channels[-1], MAX_FEATURES)
        expansion = ConvNormAct(channels[-1], features)
        self.assemble(stem, layers, expansion=expansion, features=features, dropout=classifier_dropout)
        _init_like_mobilevit_v3(self)


class MobileViTV3Linear(LayeredMobileViT):
    """MobileViTV3 on MobileViTV2: MobileViTV2's layers (see ``mobilevit_v2``) with its
    separable-attention blocks fusing local and global features and adding their input back.
    Input sizes must be multiples of 64.

    ``width``: MobileViTV2's width multiplier; ``dropout``: after the attentions and MLPs
    (PaddleClas fixes 0 here); ``classifier_dropout``: before ``fc``. ``lr_mult_list`` has 6
    values: ``conv_1``, then each layer; ``return_stages`` picks layers 0-4.
    """

    def __init__(
        self, *, width: float, dropout: float = 0.0, classifier_dropout: float = 0.1, **contract: Any
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        dropout = check_rate(name, "dropout", dropout)
        classifier_dropout = check_rate(name, "classifier_dropout", classifier_dropout)
        stem, layers, features = v2_layers(
            width,
            lambda channels, attn_dim, depth: LinearAttentionBlock(
                channels, attn_dim, depth=depth, dropout=dropout, fuse_local=True
            ),
        )
        self.assemble(stem, layers, expansion=None, features=features, dropout=classifier_dropout)
        init_like_cvnets(self)


def _init_like_mobilevit_v3(model: nn.Layer) -> None:
    """Convolutions Kaiming-normal by fan out with zero bias, linear layers truncated-normal
    (std 0.02) with zero bias, as PaddleClas initialises the MobileViT-based MobileViTV3."""
    linear_init, zero = truncated_normal(), nn.initializer.Constant(0.0)
    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            kernel = layer.weight.shape
            nn.initializer.KaimingNormal(fan_in=kernel[0] * kernel[2] * kernel[3])(layer.weight)
            if layer.bias is not None:
                zero(layer.bias)
        elif isinstance(layer, nn.Linear):
            linear_init(layer.weight)
            zero(layer.bias)


# --- pretrained weights (PaddleClas 2.6 model zoo, converted from the authors'; top-1 from its MobileViTV3 docs) --

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "MobileViTV3_XXS": 0.7087,
        "MobileViTV3_XS": 0.7663,
        "MobileViTV3_S": 0.7928,
        "MobileViTV3_XXS_L2": 0.7028,
        "MobileViTV3_XS_L2": 0.7607,
        "MobileViTV3_S_L2": 0.7907,
        "MobileViTV3_x0_5": 0.7200,
        "MobileViTV3_x0_75": 0.7626,
        "MobileViTV3_x1_0": 0.7838,
    },
    input_size=256,
)

# --- registered names ---------------------------------------------------------------------------

_XXS = dict(channels=(16, 24, 64, 80, 128), transformer_dims=(64, 80, 96), expand_ratio=2)
_XS = dict(channels=(32, 48, 96, 160, 160), transformer_dims=(96, 120, 144), expand_ratio=4)
_S = dict(channels=(32, 64, 128, 256, 320), transformer_dims=(144, 192, 240), expand_ratio=4)

VARIANTS = {
    "MobileViTV3_XXS": dict(_XXS, transformer_depths=(2, 4, 3)),
    "MobileViTV3_XS": dict(_XS, transformer_depths=(2, 4, 3)),
    "MobileViTV3_S": dict(_S, transformer_depths=(2, 4, 3)),
    "MobileViTV3_XXS_L2": dict(_XXS, transformer_depths=(2, 2, 3)),
    "MobileViTV3_XS_L2": dict(_XS, transformer_depths=(2, 2, 3)),
    "MobileViTV3_S_L2": dict(_S, transformer_depths=(2, 2, 3)),
    "MobileViTV3_x0_5": dict(model=MobileViTV3Linear, width=0.5),
    "MobileViTV3_x0_75": dict(model=MobileViTV3Linear, width=0.75),
    "MobileViTV3_x1_0": dict(model=MobileViTV3Linear, width=1.0),
}


def _min_input_size(name: str) -> int:
    """The MobileViTV2-based variants cut the maps at strides 8-32 into 2x2 patches without resizing."""
    return 64 if VARIANTS[name].get("model") is MobileViTV3Linear else 32


MIN_INPUT_SIZE = _min_input_size


BUILDERS = builders(MobileViTV3, VARIANTS, WEIGHTS)
