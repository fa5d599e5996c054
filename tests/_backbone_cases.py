"""What the backbone tests share: the names they cover, read from the registry and
grouped by family module; the smallest input each accepts; and PaddleClas for parity.

The first variant of each family (the first key of its ``VARIANTS``) is the family's
fast case; the other variants are marked ``slow``.
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import paddle
import pytest

from corolla import load_registry
from corolla.api import PluginError, lazy_variants

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a broken third-party plugin must not stop collection
    REGISTRY = load_registry()

#: backbones assembled from other backbones (they take sub-model configs, not
#: class_num), and AFD's feature transforms (not classifiers); their own tests cover them.
COMPOSITE = {"DistillationModel", "AttentionModel", "LinearTransformStudent", "LinearTransformTeacher"}


def _variant_order(module: str) -> list[str]:
    try:
        return list(lazy_variants(module))
    except PluginError:  # a module without VARIANTS
        return []


#: family module -> its backbone names, first the family's fast case
FAMILIES: dict[str, list[str]] = {}
for _component in REGISTRY.components("backbone"):
    if _component.plugin.dist != "corolla" or _component.is_alias or _component.name in COMPOSITE:
        continue
    FAMILIES.setdefault(str(_component.target).partition(":")[0], []).append(_component.name)
for _module, _names in FAMILIES.items():
    _order = _variant_order(_module)
    _names.sort(key=lambda name, order=_order: order.index(name) if name in order else len(order))

#: every backbone corolla itself registers, aliases aside
NAMES = [name for names in FAMILIES.values() for name in names]
#: the first variant of each family
FAST = {names[0] for names in FAMILIES.values()}
FAMILY_OF = {name: module for module, names in FAMILIES.items() for name in names}


def cases(names=None) -> list:
    """``names`` (default all) as pytest params, every one but a family's first marked slow."""
    return [name if name in FAST else pytest.param(name, marks=pytest.mark.slow) for name in (names or NAMES)]


#: nets whose classifier needs a fixed feature-map size: AlexNet and VGG flatten a
#: 6x6 / 7x7 map, PaddleClas's GoogLeNet always runs its auxiliary heads on 14x14
#: maps, InceptionV4's stem and reductions need 75 pixels.
INPUT_SIZE = {"AlexNet": 224, "VGG11": 224, "VGG13": 224, "VGG16": 224, "VGG19": 224, "GoogLeNet": 224, "InceptionV4": 75}


def input_size(name: str) -> int:
    """The smallest square input ``name`` accepts: its family module's ``MIN_INPUT_SIZE``
    (a model with fixed position embeddings needs its own size), else 32."""
    if name in INPUT_SIZE:
        return INPUT_SIZE[name]
    module = importlib.import_module(FAMILY_OF[name])
    size = getattr(module, "MIN_INPUT_SIZE", 32)
    return size(name) if callable(size) else size


def batch_size(name: str) -> int:
    """Two images where the last feature maps are 1x1, so that BatchNorm in training
    sees more than one value per channel; one image is enough at 224x224 and
    halves the cost of the heavy nets, except for LeViT, whose classifier is a
    BatchNorm over the batch (fitted on one image, its logits are rounding noise)."""
    return 1 if input_size(name) >= 224 and not FAMILY_OF[name].endswith(".levit") else 2


def paddleclas() -> ModuleType:
    """``ppcls`` from the paddleclas 2.6 wheel (which installs it under ``paddleclas/``);
    the test is skipped with the reason where it is not installed."""
    spec = importlib.util.find_spec("paddleclas")
    if spec is None:
        pytest.skip("PaddleClas 2.6 is not installed (pip install --no-deps paddleclas==2.6.0 and the parity extra)")
    root = str(Path(spec.submodule_search_locations[0]))
    if root not in sys.path:
        sys.path.append(root)
    try:
        import ppcls.arch.backbone
        from ppcls.utils import logger
    except ImportError as exc:
        pytest.skip(f"PaddleClas 2.6 does not import here ({exc}); install the parity extra")
    logger.init_logger()  # its deprecation warnings crash without a logger
    return ppcls


#: the least running variance a BatchNorm keeps after taking a batch's statistics
VARIANCE_FLOOR = 0.01


def calibrate_batchnorm(model: paddle.nn.Layer, images: paddle.Tensor) -> None:
    """Set every BatchNorm's running statistics from ``images`` (one train-mode forward with
    momentum 0, variances at least ``VARIANCE_FLOOR``): with fresh statistics the eval-mode
    logits of a net with random weights are degenerate (nearly equal)."""
    norms = [
        layer for layer in model.sublayers() if isinstance(layer, (paddle.nn.BatchNorm, paddle.nn.layer.norm._BatchNormBase))
    ]
    for layer in norms:
        layer._momentum = 0.0  # running statistics := this batch's statistics
    if norms:
        model.train()
        with paddle.no_grad():
            model(images)
    for layer in norms:
        # a channel constant over the batch (1x1 maps of two images) would be divided by
        # sqrt(epsilon) in eval: MobileNetV4_hybrid_large's attention then overflows
        layer._variance.set_value(np.maximum(layer._variance.numpy(), np.float32(VARIANCE_FLOOR)))


def release_memory() -> None:
    """Big nets (VGG19, SENet154) hold over 500 MB each; free them between cases. What
    survives is long-lived (modules, PaddleClas's among them): frozen out of later full
    collections, which would otherwise scan it again every few nets (see conftest.py)."""
    gc.collect()
    gc.freeze()


def filled(model: paddle.nn.Layer, seed: int = 0) -> paddle.nn.Layer:
    """``model``, built under ``paddle.LazyGuard``, with every weight not yet set given
    seeded values that keep activations in range: matrices and kernels uniform within
    half of 1/sqrt(fan-in) (at PyTorch's default bound, CvT's attention amplifies rounding
    to 5e-4 of its logits), 1-D scales near one, shifts near zero, BatchNorm variances positive.
    Buffers the model computed while building (position indices) are kept.

    Paddle's random initializers (truncated normal above all) are most of the cost of a
    test that only needs some weights: filling is three to five times cheaper for most nets."""
    rng = np.random.default_rng(seed)
    for key, tensor in model.state_dict().items():
        if tensor._is_initialized():
            continue
        shape = tuple(tensor.shape)
        noise = rng.random(shape, dtype=np.float32) - np.float32(0.5)  # uniform, variance 1/12
        attribute = key.rpartition(".")[2]
        if len(shape) >= 2:
            values = noise / np.float32(np.sqrt(np.prod(shape[1:])))
        elif attribute.endswith("variance"):
            values = 1 + np.abs(noise)
        elif attribute in ("weight", "scale"):
            values = 1 + np.float32(0.2) * noise
        else:
            values = np.float32(0.2) * noise
        tensor.set_value(values)
    return model
