"""DeiT, data-efficient image transformers (Touvron et al. 2020, https://arxiv.org/abs/2012.12877),
weight-compatible with PaddleClas 2.6's ``DeiT_*`` (model_zoo/distilled_vision_transformer.py).

The plain DeiTs are Vision Transformers; the ``_distilled`` ones add a distillation token with
its own classifier (``head_dist``) and return the mean of both heads' logits, in training as
in inference, as PaddleClas does (its DeiT configs train them with CELoss on that mean).
The model is :class:`~corolla.plugins.backbones.vision_transformer.VisionTransformer`.
"""
from __future__ import annotations

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import builders, native_input_size
from corolla.plugins.backbones.vision_transformer import VisionTransformer

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its ViT and DeiT docs) ------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "DeiT_tiny_patch16_224": 0.718,
        "DeiT_small_patch16_224": 0.796,
        "DeiT_base_patch16_224": 0.817,
        "DeiT_tiny_distilled_patch16_224": 0.741,
        "DeiT_small_distilled_patch16_224": 0.809,
        "DeiT_base_distilled_patch16_224": 0.831,
    },
) | weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"DeiT_base_patch16_384": 0.830, "DeiT_base_distilled_patch16_384": 0.851},
    input_size=384,
)

# --- registered names ---------------------------------------------------------------------------

_COMMON = dict(patch_size=16, depth=12, mlp_ratio=4, qkv_bias=True, epsilon=1e-6)
_TINY = dict(embed_dim=192, num_heads=3, **_COMMON)
_SMALL = dict(embed_dim=384, num_heads=6, **_COMMON)
_BASE = dict(embed_dim=768, num_heads=12, **_COMMON)

VARIANTS = {
    "DeiT_tiny_patch16_224": dict(img_size=224, **_TINY),
    "DeiT_small_patch16_224": dict(img_size=224, **_SMALL),
    "DeiT_base_patch16_224": dict(img_size=224, **_BASE),
    "DeiT_base_patch16_384": dict(img_size=384, **_BASE),
    "DeiT_tiny_distilled_patch16_224": dict(img_size=224, distilled=True, **_TINY),
    "DeiT_small_distilled_patch16_224": dict(img_size=224, distilled=True, **_SMALL),
    "DeiT_base_distilled_patch16_224": dict(img_size=224, distilled=True, **_BASE),
    "DeiT_base_distilled_patch16_384": dict(img_size=384, distilled=True, **_BASE),
}

#: the position embeddings fix each variant's input size
MIN_INPUT_SIZE = native_input_size(VARIANTS)

BUILDERS = builders(VisionTransformer, VARIANTS, WEIGHTS)
