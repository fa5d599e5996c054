"""Vision Transformer (Dosovitskiy et al. 2020, https://arxiv.org/abs/2010.11929), weight-compatible
with PaddleClas 2.6's ``ViT_*`` (model_zoo/vision_transformer.py).

The model is :class:`~corolla.plugins.backbones._transformer.VisionTransformer`, shared with DeiT.
``ViT_small_patch16_224`` is PaddleClas's own small variant (768 wide, 8 blocks, MLP ratio 3, no
qkv bias, attention scaled by ``768 ** -0.5``), not the later ViT-S/16.
"""
from __future__ import annotations

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import builders
from corolla.plugins.backbones._transformer import VisionTransformer, native_input_size

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
