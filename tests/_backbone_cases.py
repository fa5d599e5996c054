"""What the backbone tests share: the names they cover, read from the registry, and
the smallest input each net accepts."""
from __future__ import annotations

import gc
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

from corolla import load_registry

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a broken third-party plugin must not stop collection
    REGISTRY = load_registry()

#: backbones assembled from other backbones (they take sub-model configs, not
#: class_num); their own tests cover them.
COMPOSITE = {"DistillationModel"}

#: every backbone corolla itself registers, aliases aside
NAMES = [
    c.name
    for c in REGISTRY.components("backbone")
    if c.plugin.dist == "corolla" and not c.is_alias and c.name not in COMPOSITE
]

#: nets whose classifier needs a fixed feature-map size: AlexNet and VGG flatten a
#: 6x6 / 7x7 map, PaddleClas's GoogLeNet always runs its auxiliary heads on 14x14
#: maps, InceptionV4's stem and reductions need 75 pixels. Every other net takes 32.
INPUT_SIZE = {"AlexNet": 224, "VGG11": 224, "VGG13": 224, "VGG16": 224, "VGG19": 224, "GoogLeNet": 224, "InceptionV4": 75}


def input_size(name: str) -> int:
    return INPUT_SIZE.get(name, 32)


def batch_size(name: str) -> int:
    """Two images where the last feature maps are 1x1, so that BatchNorm in training
    sees more than one value per channel; one image is enough at 224x224 and
    halves the cost of the heavy VGGs."""
    return 1 if input_size(name) >= 224 else 2


def paddleclas() -> ModuleType:
    """``ppcls`` from the paddleclas 2.6 wheel, which installs it under ``paddleclas/``."""
    spec = importlib.util.find_spec("paddleclas")
    assert spec is not None, "paddleclas 2.6.0 must be installed: pip install --no-deps paddleclas==2.6.0 (see README)"
    root = str(Path(spec.submodule_search_locations[0]))
    if root not in sys.path:
        sys.path.append(root)
    import ppcls.arch.backbone
    from ppcls.utils import logger

    logger.init_logger()  # its deprecation warnings crash without a logger
    return ppcls


def release_memory() -> None:
    """Big nets (VGG19, SENet154) hold over 500 MB each; free them between cases."""
    gc.collect()
