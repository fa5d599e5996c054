"""Parity with PaddleClas 2.6: for every backbone corolla registers, PaddleClas's model
of the same name has the same parameter names and shapes, and with its state dict
loaded corolla's model gives the same logits.

Names and shapes of every model are compared with PaddleClas's as recorded in
``paddleclas_shapes.json`` (``record_paddleclas_shapes.py`` writes it; building only
corolla's model halves the cost), and in the ``slow`` run with PaddleClas's model itself;
both are built without initialising their weights (``paddle.LazyGuard``). Logits are
compared for each family's first variant, and for the rest in the ``slow`` run: corolla's
model is built lazily too and takes every weight from PaddleClas's, whose model is built
lazily and given seeded weights (``filled``). Such nets give degenerate eval-mode logits, so
each BatchNorm's running statistics are first set from a batch (one train-mode forward with
momentum 0, variances at least 0.01); logits are compared relative to their largest
magnitude. What needs PaddleClas is skipped, with the reason, where it is not installed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from _backbone_cases import (NAMES, REGISTRY, batch_size, calibrate_batchnorm, cases, filled, input_size, paddleclas,
                             release_memory)

from corolla.api import apply_state_dict

ATOL = 1e-4


@pytest.fixture(scope="module")
def paddleclas_backbones():
    return vars(paddleclas().arch.backbone)


def _shapes(model: paddle.nn.Layer) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}


#: names whose PaddleClas builder fails on its own (it looks up a weights URL that
#: PaddleClas never published, even with pretrained=False): built from its class instead
UNBUILDABLE = {
    **{f"MobileViTV2_x{w}": lambda zoo, w=w: zoo.model_zoo.mobilevit_v2.MobileViTV2(
        zoo.model_zoo.mobilevit_v2.get_configuration(float(w.replace("_", ".")))) for w in ("0_75", "1_25", "1_75")},
    "HRNet_W60_C": lambda zoo: zoo.legendary_models.hrnet.HRNet(
        width=60, stages_pattern=zoo.legendary_models.hrnet.MODEL_STAGES_PATTERN["HRNet"]),
    "SE_HRNet_W64_C": lambda zoo: zoo.legendary_models.hrnet.HRNet(
        width=64, stages_pattern=zoo.legendary_models.hrnet.MODEL_STAGES_PATTERN["HRNet"], has_se=True),
}


def build_theirs(backbones: dict, name: str) -> paddle.nn.Layer:
    assert name in backbones, f"PaddleClas 2.6 has no backbone {name!r}"
    # PaddleClas names some parameters explicitly ("fc6_weights"), which Paddle
    # allows once per name scope: give each of its models a fresh scope.
    with paddle.utils.unique_name.guard():
        if name in UNBUILDABLE:
            return UNBUILDABLE[name](paddleclas().arch.backbone)
        try:  # some builders (UniFormer) default to downloading their weights
            return backbones[name](pretrained=False)
        finally:
            # UniFormer_base_ls turns on a module-wide flag that PaddleClas never turns off
            paddleclas().arch.backbone.model_zoo.uniformer.layer_scale = False


def lazily(build):
    """``build()`` without initialising weights where the model allows it (PaddleClas's
    ConvNeXt writes its head's weights while building, which needs real memory)."""
    try:
        with paddle.LazyGuard():
            return build()
    except (RuntimeError, ValueError):
        return build()


#: PaddleClas 2.6's parameter names and shapes, by model (record_paddleclas_shapes.py)
RECORD = Path(__file__).with_name("paddleclas_shapes.json")


def shapes_record(model: paddle.nn.Layer) -> dict:
    """The parameter count and a digest of the sorted ``name:shape`` lines of ``model``."""
    shapes = _shapes(model)
    lines = "\n".join(sorted(f"{key}:{list(shape)}" for key, shape in shapes.items()))
    return {"parameters": len(shapes), "digest": hashlib.sha256(lines.encode()).hexdigest()[:32]}


@pytest.fixture(scope="module")
def recorded():
    return json.loads(RECORD.read_text())["models"]


def test_every_backbone_has_a_recorded_paddleclas_shape(recorded):
    assert sorted(recorded) == sorted(NAMES), "run python tests/record_paddleclas_shapes.py"


@pytest.mark.parametrize("name", NAMES)
def test_same_parameter_names_and_shapes_as_paddleclas_recorded(name, recorded):
    ours = lazily(lambda: REGISTRY.build("backbone", name))
    got = shapes_record(ours)
    if got == recorded.get(name):
        return
    try:  # show what differs from PaddleClas's model itself where it is installed
        backbones = vars(paddleclas().arch.backbone)
    except pytest.skip.Exception:
        pytest.fail(f"{name}: {got} differs from PaddleClas's {recorded.get(name)} in {RECORD.name}")
    assert _shapes(ours) == _shapes(lazily(lambda: build_theirs(backbones, name)))
    pytest.fail(f"{name} matches PaddleClas but not {RECORD.name}: run python tests/record_paddleclas_shapes.py")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_same_parameter_names_and_shapes_as_paddleclas(name, paddleclas_backbones):
    reference = lazily(lambda: build_theirs(paddleclas_backbones, name))
    ours = lazily(lambda: REGISTRY.build("backbone", name))
    assert _shapes(ours) == _shapes(reference)


def _logits(output) -> paddle.Tensor:
    # PaddleClas's GoogLeNet returns [main, auxiliary 1, auxiliary 2]
    return output[0] if isinstance(output, (list, tuple)) else output


#: names whose PaddleClas 2.6 model cannot run forward at all (its SwinTransformerV2 forward
#: was left half-rewritten and raises NameError); tests/test_backbones_vit_swin.py compares
#: their buffers and attention against it instead
NO_REFERENCE_FORWARD = {name for name in NAMES if name.startswith("SwinTransformerV2_")}


@pytest.mark.parametrize("name", cases())
def test_same_logits_as_paddleclas(name, paddleclas_backbones):
    if name in NO_REFERENCE_FORWARD:
        pytest.skip("PaddleClas 2.6's own SwinTransformerV2 forward raises NameError: nothing to compare logits with")
    theirs = filled(lazily(lambda: build_theirs(paddleclas_backbones, name)))
    with paddle.LazyGuard():  # every weight comes from theirs
        ours = REGISTRY.build("backbone", name)
    size = input_size(name)
    batch = batch_size(name)
    images = paddle.to_tensor(np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32))
    calibrate_batchnorm(theirs, images)
    apply_state_dict(ours, {k: v.numpy() for k, v in theirs.state_dict().items()}, name=name, source="PaddleClas", strict=True)
    theirs.eval()
    ours.eval()
    with paddle.no_grad():
        expected = _logits(theirs(images)).numpy()
        got = ours(images).numpy()
    scale = np.abs(expected).max()
    assert got.shape == expected.shape == (batch, 1000)
    assert scale > 0 and np.isfinite(scale)
    np.testing.assert_allclose(got / scale, expected / scale, rtol=0, atol=ATOL)
    del theirs, ours
    release_memory()
