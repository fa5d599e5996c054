"""EfficientNet (Tan & Le 2019, https://arxiv.org/abs/1905.11946), weight-compatible with
PaddleClas 2.6's ``EfficientNetB0`` ... ``EfficientNetB7`` and ``EfficientNetB0_small`` (B0
without squeeze-excitation, padded symmetrically). The model lives in :mod:`._efficientnet`,
which TinyNet shares."""
from __future__ import annotations

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import builders
from corolla.plugins.backbones._efficientnet import EfficientNet

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

_URL = MODEL_ZOO_URL + "{}_pretrained.pdparams"
WEIGHTS = (
    weights_table(_URL, {"EfficientNetB0_small": 0.7580, "EfficientNetB0": 0.7738})
    | weights_table(_URL, {"EfficientNetB1": 0.7915}, input_size=240)
    | weights_table(_URL, {"EfficientNetB2": 0.7985}, input_size=260)
    | weights_table(_URL, {"EfficientNetB3": 0.8115}, input_size=300)
    | weights_table(_URL, {"EfficientNetB4": 0.8285}, input_size=380)
    | weights_table(_URL, {"EfficientNetB5": 0.8362}, input_size=456)
    | weights_table(_URL, {"EfficientNetB6": 0.8400}, input_size=528)
    | weights_table(_URL, {"EfficientNetB7": 0.8430}, input_size=600)
)

# --- registered names: (width, depth, resolution, dropout) per PaddleClas ------------------------

VARIANTS = {
    "EfficientNetB0_small": dict(
        width_coefficient=1.0, depth_coefficient=1.0, resolution=224, dropout_rate=0.2,
        padding_type="DYNAMIC", use_se=False,
    ),
    "EfficientNetB0": dict(width_coefficient=1.0, depth_coefficient=1.0, resolution=224, dropout_rate=0.2),
    "EfficientNetB1": dict(width_coefficient=1.0, depth_coefficient=1.1, resolution=240, dropout_rate=0.2),
    "EfficientNetB2": dict(width_coefficient=1.1, depth_coefficient=1.2, resolution=260, dropout_rate=0.3),
    "EfficientNetB3": dict(width_coefficient=1.2, depth_coefficient=1.4, resolution=300, dropout_rate=0.3),
    "EfficientNetB4": dict(width_coefficient=1.4, depth_coefficient=1.8, resolution=380, dropout_rate=0.4),
    "EfficientNetB5": dict(width_coefficient=1.6, depth_coefficient=2.2, resolution=456, dropout_rate=0.4),
    "EfficientNetB6": dict(width_coefficient=1.8, depth_coefficient=2.6, resolution=528, dropout_rate=0.5),
    "EfficientNetB7": dict(width_coefficient=2.0, depth_coefficient=3.1, resolution=600, dropout_rate=0.5),
}

BUILDERS = builders(EfficientNet, VARIANTS, WEIGHTS)
