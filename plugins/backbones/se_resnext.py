"""SE-ResNeXt and SENet-154 (Hu et al. 2018): ResNeXt bottlenecks with squeeze-and-excitation.

Built by :class:`~.resnext.ResNeXt` with ``se_reduction=16``; parameter names
are those of PaddleClas 2.6 (model_zoo/se_resnext.py, se_resnext_vd.py).
"""
from __future__ import annotations

from corolla.plugins.backbones._layers import make_builder
from corolla.plugins.backbones.resnext import ResNeXt
from corolla.engine.weights import MODEL_ZOO_URL, PretrainedWeights

SE_REDUCTION = 16
_GROUPS_DOC = "\n\n  lr_mult_list: 5 values: stem, stage0-stage3."

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS: dict[str, PretrainedWeights] = {
    "SE_ResNeXt50_32x4d": PretrainedWeights(MODEL_ZOO_URL + "SE_ResNeXt50_32x4d_pretrained.pdparams", 0.7844),
    "SE_ResNeXt101_32x4d": PretrainedWeights(MODEL_ZOO_URL + "SE_ResNeXt101_32x4d_pretrained.pdparams", 0.7939),
    "SENet154_vd": PretrainedWeights(MODEL_ZOO_URL + "SENet154_vd_pretrained.pdparams", 0.8140),
}


# --- builders ---------------------------------------------------------------------------------


SE_ResNeXt50_32x4d = make_builder(
    "SE_ResNeXt50_32x4d",
    ResNeXt,
    WEIGHTS,
    "SE-ResNeXt-50, 32 groups of width 4." + _GROUPS_DOC,
    depth=50,
    groups=32,
    group_width=4,
    deep_stem=None,
    avg_down=False,
    se_reduction=SE_REDUCTION,
)
SE_ResNeXt101_32x4d = make_builder(
    "SE_ResNeXt101_32x4d",
    ResNeXt,
    WEIGHTS,
    "SE-ResNeXt-101, 32 groups of width 4." + _GROUPS_DOC,
    depth=101,
    groups=32,
    group_width=4,
    deep_stem=None,
    avg_down=False,
    se_reduction=SE_REDUCTION,
)
SENet154_vd = make_builder(
    "SENet154_vd",
    ResNeXt,
    WEIGHTS,
    "SENet-154 (SE-ResNeXt-152 64x4d) with a wide deep stem and average-pool shortcuts (vd)." + _GROUPS_DOC,
    depth=152,
    groups=64,
    group_width=4,
    deep_stem=(64, 64, 128),
    avg_down=True,
    se_reduction=SE_REDUCTION,
)
