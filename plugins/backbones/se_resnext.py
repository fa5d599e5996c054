"""SE-ResNet, SE-ResNeXt and SENet-154 (Hu et al. 2018, https://arxiv.org/abs/1709.01507):
ResNet and ResNeXt blocks with squeeze-and-excitation, weight-compatible with PaddleClas
2.6's model_zoo/se_resnet_vd.py, se_resnext.py and se_resnext_vd.py.

All are :class:`~._zoo_resnet.ResNeXt` with ``se_reduction=16``. The ``_vd`` variants use a
deep 3-conv stem and average-pool shortcuts (ResNet-D, He et al. 2019); the ``_vd``
SE-ResNeXts have a wide one (64, 64, 128). PaddleClas 2.6 also names an
``SE_ResNeXt152_64x4d``, which corolla leaves out: its first block expects 64 input
channels where its stem gives 128, so PaddleClas's own model cannot run.
"""
from __future__ import annotations

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import builders
from corolla.plugins.backbones._zoo_resnet import ResNeXt

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "SE_ResNet18_vd": 0.7333,
        "SE_ResNet34_vd": 0.7651,
        "SE_ResNet50_vd": 0.7952,
        "SE_ResNeXt50_32x4d": 0.7844,
        "SE_ResNeXt50_vd_32x4d": 0.8024,
        "SE_ResNeXt101_32x4d": 0.7939,
        "SENet154_vd": 0.8140,
    },
)

# --- registered names ---------------------------------------------------------------------------

_SE = dict(se_reduction=16)
_RESNET_VD = dict(groups=1, group_width=64, deep_stem=(32, 32, 64), avg_down=True, **_SE)
_WIDE_STEM = (64, 64, 128)

VARIANTS = {
    "SE_ResNet18_vd": dict(depth=18, **_RESNET_VD),
    "SE_ResNet34_vd": dict(depth=34, **_RESNET_VD),
    "SE_ResNet50_vd": dict(depth=50, **_RESNET_VD),
    "SE_ResNeXt50_32x4d": dict(depth=50, groups=32, group_width=4, deep_stem=None, avg_down=False, **_SE),
    "SE_ResNeXt50_vd_32x4d": dict(depth=50, groups=32, group_width=4, deep_stem=_WIDE_STEM, avg_down=True, **_SE),
    "SE_ResNeXt101_32x4d": dict(depth=101, groups=32, group_width=4, deep_stem=None, avg_down=False, **_SE),
    "SENet154_vd": dict(depth=152, groups=64, group_width=4, deep_stem=_WIDE_STEM, avg_down=True, **_SE),
}

BUILDERS = builders(ResNeXt, VARIANTS, WEIGHTS)
