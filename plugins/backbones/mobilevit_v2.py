"""MobileViTV2 (Mehta & Rastegari 2022, https://arxiv.org/abs/2206.02680): MobileViT with
separable self-attention, linear in the number of patches, weight-compatible with PaddleClas
2.6's ``MobileViTV2_x*``."""
from __future__ import annotations

from typing import Any

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import builders
from corolla.plugins.backbones._init import init_like_cvnets
from corolla.plugins.backbones._mobilevit import LayeredMobileViT, LinearAttentionBlock, v2_layers

# --- the model -----------------------------------------------------------------------------


class MobileViTV2(LayeredMobileViT):
    """MobileViTV2: a 3x3/2 stem ``conv_1``; MobileNetV2 layers ``layer_1``, ``layer_2``; then
    ``layer_3..layer_5``, each a strided MobileNetV2 block and a
    :class:`~._mobilevit.LinearAttentionBlock` (2, 4, 3 attention blocks); global pooling and
    ``classifier``. Input sizes must be multiples of 64 (its patches are never resized).

    ``width``: the width multiplier. ``lr_mult_list`` has 6 values: ``conv_1``, then each
    layer; ``return_stages`` picks layers 0-4 (``layer_1..layer_5``).
    """

    def __init__(self, *, width: float, **contract: Any) -> None:
        super().__init__(**contract)
        stem, layers, features = v2_layers(
            width, lambda channels, attn_dim, depth: LinearAttentionBlock(channels, attn_dim, depth=depth)
        )
        self.assemble(stem, layers, expansion=None, features=features, dropout=0.0)
        init_like_cvnets(self)


# --- pretrained weights (PaddleClas 2.6 model zoo, converted from Apple's; top-1 from its MobileViTV2 docs) --

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"MobileViTV2_x0_5": 0.7017, "MobileViTV2_x1_0": 0.7813, "MobileViTV2_x1_5": 0.8034, "MobileViTV2_x2_0": 0.8116},
    input_size=256,
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "MobileViTV2_x0_5": dict(width=0.5),
    "MobileViTV2_x0_75": dict(width=0.75),
    "MobileViTV2_x1_0": dict(width=1.0),
    "MobileViTV2_x1_25": dict(width=1.25),
    "MobileViTV2_x1_5": dict(width=1.5),
    "MobileViTV2_x1_75": dict(width=1.75),
    "MobileViTV2_x2_0": dict(width=2.0),
}

#: the attention blocks cut the maps at strides 8, 16 and 32 into 2x2 patches
MIN_INPUT_SIZE = 64

BUILDERS = builders(MobileViTV2, VARIANTS, WEIGHTS)
