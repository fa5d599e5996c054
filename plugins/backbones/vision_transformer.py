"""Vision Transformer (Dosovitskiy et al. 2020, https://arxiv.org/abs/2010.11929), weight-compatible
with PaddleClas 2.6's ``ViT_*`` (model_zoo/vision_transformer.py).

The model, :class:`VisionTransformer`, is also DeiT's (``deit``).
``ViT_small_patch16_224`` is PaddleClas's own small variant (768 wide, 8 blocks, MLP ratio 3, no
qkv bias, attention scaled by ``768 ** -0.5``), not the later ViT-S/16.
"""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, native_input_size
from corolla.plugins.backbones._checks import check_input_size, check_rate
from corolla.plugins.backbones._init import TRUNC_NORMAL, init_transformer_weights
from corolla.plugins.backbones._regularize import drop_path_rates
from corolla.plugins.backbones._transformer import EncoderBlock, PatchEmbed

# --- the model -----------------------------------------------------------------------------


class VisionTransformer(Backbone):
    """Vision Transformer (Dosovitskiy et al. 2020), and DeiT (Touvron et al. 2020) with
    ``distilled``: ``patch_embed``, a class token (``cls_token``; with ``distilled`` also a
    distillation token ``dist_token``), learned position embeddings (``pos_embed``), ``depth``
    :class:`EncoderBlock` s (``blocks``), a LayerNorm (``norm``) and the classifier ``head`` on
    the class token. A distilled model also has ``head_dist`` on the distillation token and,
    in training as in inference (as PaddleClas), returns the mean of the two heads' logits
    (PaddleClas's DeiT configs train it with CELoss on that mean).

    The input must be ``img_size`` square: the position embeddings are fixed. No stages
    and no parameter groups (``lr_mult_list`` is not supported); ``return_patterns`` can
    name ``blocks[i]``, ``head`` or ``head_dist``. ``drop_rate`` is the dropout after the
    position embeddings and in each block, ``attn_drop_rate`` that of the attention weights,
    ``drop_path_rate`` the stochastic depth of the last block (rising linearly from 0).
    """

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        epsilon: float,
        qk_scale: float | None = None,
        distilled: bool = False,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        for key, value in (("drop_rate", drop_rate), ("attn_drop_rate", attn_drop_rate), ("drop_path_rate", drop_path_rate)):
            check_rate(self.model_name, key, value)
        self.img_size = img_size
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        tokens = (img_size // patch_size) ** 2 + (2 if distilled else 1)
        self.pos_embed = self.create_parameter([1, tokens, embed_dim], default_initializer=TRUNC_NORMAL)
        self.cls_token = self.create_parameter([1, 1, embed_dim], default_initializer=TRUNC_NORMAL)
        self.dist_token = (
            self.create_parameter([1, 1, embed_dim], default_initializer=TRUNC_NORMAL) if distilled else None
        )
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.LayerList(
            EncoderBlock(
                embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, scale=qk_scale, drop=drop_rate,
                attn_drop=attn_drop_rate, drop_path=rate, epsilon=epsilon,
            )
            for rate in drop_path_rates(drop_path_rate, depth)
        )
        self.norm = nn.LayerNorm(embed_dim, epsilon=epsilon)
        self.head = nn.Linear(embed_dim, self.class_num)
        self.head_dist = nn.Linear(embed_dim, self.class_num) if distilled else None
        init_transformer_weights(self)
        self.finish()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        check_input_size(self.model_name, x, self.img_size, "position embeddings")
        x, _ = self.patch_embed(x)
        batch = x.shape[0]
        tokens = [self.cls_token.expand([batch, -1, -1]).astype(x.dtype)]
        if self.dist_token is not None:
            tokens.append(self.dist_token.expand([batch, -1, -1]).astype(x.dtype))
        x = self.pos_drop(paddle.concat(tokens + [x], axis=1) + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        logits = self.head(x[:, 0])
        if self.head_dist is None:
            return logits
        return (logits + self.head_dist(x[:, 1])) / 2


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its ViT and DeiT docs) ------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "ViT_small_patch16_224": 0.7769,
        "ViT_base_patch16_224": 0.8195,
        "ViT_large_patch16_224": 0.8323,
    },
) | weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "ViT_base_patch16_384": 0.8414,
        "ViT_base_patch32_384": 0.8176,
        "ViT_large_patch16_384": 0.8513,
        "ViT_large_patch32_384": 0.8153,
    },
    input_size=384,
)

# --- registered names ---------------------------------------------------------------------------

_BASE = dict(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4, qkv_bias=True, epsilon=1e-6)
_LARGE = dict(embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4, qkv_bias=True, epsilon=1e-6)

VARIANTS = {
    "ViT_small_patch16_224": dict(
        img_size=224, patch_size=16, embed_dim=768, depth=8, num_heads=8, mlp_ratio=3, qkv_bias=False,
        qk_scale=768**-0.5, epsilon=1e-5,
    ),
    "ViT_base_patch16_224": dict(img_size=224, patch_size=16, **_BASE),
    "ViT_base_patch16_384": dict(img_size=384, patch_size=16, **_BASE),
    "ViT_base_patch32_384": dict(img_size=384, patch_size=32, **_BASE),
    "ViT_large_patch16_224": dict(img_size=224, patch_size=16, **_LARGE),
    "ViT_large_patch16_384": dict(img_size=384, patch_size=16, **_LARGE),
    "ViT_large_patch32_384": dict(img_size=384, patch_size=32, **_LARGE),
}

#: the position embeddings fix each variant's input size
MIN_INPUT_SIZE = native_input_size(VARIANTS)

BUILDERS = builders(VisionTransformer, VARIANTS, WEIGHTS)
