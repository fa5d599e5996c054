"""The backbone contract, checked for every backbone corolla registers.

A builder takes ``class_num``, ``lr_mult_list`` (one multiplier per parameter
group; the built model keeps the resolved list as ``model.lr_mult_list``) and
``return_stages`` (``True`` for all stages); any number of instances coexist.
"""
from __future__ import annotations

import inspect

import numpy as np
import paddle
import pytest
from _backbone_cases import NAMES, REGISTRY, batch_size, cases, filled, input_size, release_memory

from corolla.plugin.errors import ComponentArgumentError
from corolla.plugins.backbones._base import resolve_lr_mult_list, resolve_return_stages
from corolla.plugins.backbones._layers import LeanBatchNorm2D


def _images(batch: int, size: int, seed: int) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal((batch, 3, size, size), dtype=np.float32))


def _lr_mult(param: paddle.Tensor) -> float:
    return round(float(param.optimize_attr["learning_rate"]), 6)


def test_every_seed_model_is_registered():
    expected = {
        "ResNet18", "ResNet34", "ResNet50", "ResNet101", "ResNet152", "ResNet18_vd", "ResNet34_vd",
        "ResNet50_vd", "ResNet101_vd", "ResNet152_vd", "ResNet200_vd", "ResNet50_vc", "ResNeXt50_32x4d",
        "ResNeXt101_64x4d", "ResNeXt101_vd_64x4d", "SE_ResNeXt50_32x4d", "SE_ResNeXt101_32x4d", "SENet154_vd",
        "AlexNet", "VGG11", "VGG13", "VGG16", "VGG19", "GoogLeNet", "InceptionV4",
        "MobileNetV1_x0_25", "MobileNetV1_x0_5", "MobileNetV1_x0_75", "MobileNetV1",
        "MobileNetV2_x0_25", "MobileNetV2_x0_5", "MobileNetV2_x0_75", "MobileNetV2", "MobileNetV2_x1_5", "MobileNetV2_x2_0",
        *(f"MobileNetV3_{size}_{scale}" for size in ("small", "large") for scale in ("x0_35", "x0_5", "x0_75", "x1_0", "x1_25")),
        *(f"PPLCNet_{scale}" for scale in ("x0_25", "x0_35", "x0_5", "x0_75", "x1_0", "x1_5", "x2_0", "x2_5")),
        *(f"ShuffleNetV2_{scale}" for scale in ("x0_25", "x0_33", "x0_5", "x1_0", "x1_5", "x2_0")),
    }
    assert expected <= set(NAMES), sorted(expected - set(NAMES))


@pytest.mark.parametrize("old, new", [("SE154_vd", "SENet154_vd"), ("GoogleNet", "GoogLeNet"), ("ShuffleNetV2", "ShuffleNetV2_x1_0")])
def test_seed_002_names_are_deprecated_aliases(old, new):
    with pytest.warns(DeprecationWarning, match=f"{old!r} is deprecated; use {new!r}"):
        assert REGISTRY.resolve("backbone", old).name == new


@pytest.mark.parametrize("name", cases())
def test_backbone_contract(name):
    size = input_size(name)
    base = REGISTRY.build("backbone", name)
    assert isinstance(base, paddle.nn.Layer)
    groups = len(base.lr_mult_list)
    assert base.lr_mult_list == [1.0] * groups
    stages = getattr(base, "stage_count", 0)
    base.eval()
    with paddle.no_grad():
        reference = base(_images(1, size, seed=0)).numpy()
    assert reference.shape == (1, 1000) and np.isfinite(reference).all()

    multipliers = [round(0.1 * (i + 1), 6) for i in range(groups)]
    options = {"class_num": 7}
    if groups:
        options["lr_mult_list"] = multipliers
    if stages:
        options["return_stages"] = True
    with paddle.LazyGuard():  # the default build above ran Paddle's initializers; this one only needs weights
        model = REGISTRY.build("backbone", name, options)
    filled(model)
    # each group's multiplier reaches its parameters; the classifier keeps 1.0 (relative to
    # each parameter's own rate without lr_mult_list: some nets train a few at 0.01x, as PaddleClas)
    own = [_lr_mult(p) for p in base.parameters()]
    found = {round(_lr_mult(p) / rate, 6) for p, rate in zip(model.parameters(), own) if rate}
    assert set(multipliers) <= found <= set(multipliers) | {1.0}

    model.train()
    batch = batch_size(name)
    output = model(_images(batch, size, seed=1))
    logits = output["logits"] if stages else output
    assert logits.shape == [batch, 7]
    keys = sorted(key for key in output if key != "logits") if stages else []
    assert keys == [f"stage{i}" for i in range(stages)]
    for key in keys:
        assert output[key].ndim in (3, 4) and output[key].shape[0] == batch, key
    loss = logits.square().mean() + sum(output[key].mean() for key in keys)
    loss.backward()
    trained = [p for p in model.parameters() if not p.stop_gradient]
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in trained)
    for param in trained:
        assert param.grad is None or np.isfinite(param.grad.numpy()).all(), param.name
    staged = [p for p, rate in zip(model.parameters(), own) if rate and round(_lr_mult(p) / rate, 6) in multipliers]
    assert all(p.grad is not None for p in staged)

    # the two instances share nothing and the first is undisturbed
    assert list(base.state_dict()) == list(model.state_dict())
    assert not {p.name for p in base.parameters()} & {p.name for p in model.parameters()}
    with paddle.no_grad():
        np.testing.assert_allclose(base(_images(1, size, seed=0)).numpy(), reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max())

    with pytest.raises(ComponentArgumentError, match="lr_mult_list"), paddle.LazyGuard():
        REGISTRY.build("backbone", name, {"lr_mult_list": [1.0] * (groups + 1)})
    del base, model, output, loss
    release_memory()


@pytest.mark.parametrize("name", NAMES)
def test_unknown_arguments_are_errors_that_name_the_backbone(name):
    with pytest.raises(ComponentArgumentError, match=rf"backbone '{name}' from plugin 'backbones'.* has no argument 'clas_num'.*'class_num'"):
        REGISTRY.build("backbone", name, {"clas_num": 3}, key_path="Arch")


def test_lr_mult_list_and_return_stages_are_validated():
    groups = ("stem", "stage0", "stage1")
    assert resolve_lr_mult_list("Net", None, groups) == [1.0, 1.0, 1.0]
    assert resolve_lr_mult_list("Net", (0.1, 1, 0.5), groups) == [0.1, 1.0, 0.5]
    for bad in ([0.1, 0.2], [0.1, 0.2, "x"], [0.1, -1, 1], 0.5):
        with pytest.raises(ComponentArgumentError, match=r"Net: lr_mult_list needs 3 non-negative numbers, one per group \(stem, stage0, stage1\)"):
            resolve_lr_mult_list("Net", bad, groups)
    assert resolve_return_stages("Net", None, 4) == []
    assert resolve_return_stages("Net", True, 4) == [0, 1, 2, 3]
    assert resolve_return_stages("Net", 2, 4) == [2]
    assert resolve_return_stages("Net", [3, 1, 3], 4) == [1, 3]
    for bad in ([4], [-1], [], ["1"], [True]):
        with pytest.raises(ComponentArgumentError, match=r"Net: return_stages must be True or stage indices from 0 to 3"):
            resolve_return_stages("Net", bad, 4)


def test_seed_000_lr_mult_list_on_resnet50_vd():
    model = REGISTRY.build("backbone", "ResNet50_vd", {"lr_mult_list": [0.1, 0.1, 0.2, 0.2, 0.3], "class_num": 102})
    # BatchNorm running statistics are parameters too, but not trained
    assert {_lr_mult(p) for p in model.stem.parameters() if p.trainable} == {0.1}
    stage_of_block = [0] * 3 + [1] * 4 + [2] * 6 + [3] * 3
    for block, stage in zip(model.blocks, stage_of_block):
        assert {_lr_mult(p) for p in block.parameters() if p.trainable} == {[0.1, 0.2, 0.2, 0.3][stage]}
    assert _lr_mult(model.fc.weight) == 1.0 and model.fc.weight.shape == [2048, 102]
    # the optimizer scales the step of each parameter by its multiplier
    opt = paddle.optimizer.SGD(learning_rate=1.0, parameters=model.parameters())
    stem_weight, fc_weight = model.stem[0].conv.weight, model.fc.weight
    before = stem_weight.numpy(), fc_weight.numpy()
    model.train()
    model(_images(2, 32, seed=2)).mean().backward()
    grads = stem_weight.grad.numpy(), fc_weight.grad.numpy()
    opt.step()
    np.testing.assert_allclose(stem_weight.numpy(), before[0] - 0.1 * grads[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fc_weight.numpy(), before[1] - grads[1], rtol=1e-5, atol=1e-7)


def test_return_stages_subset_and_stride_list():
    model = REGISTRY.build("backbone", "ResNet18", {"return_stages": [1, 3], "stride_list": [2, 2, 2, 2, 1]})
    model.eval()
    with paddle.no_grad():
        output = model(_images(1, 64, seed=3))
    assert sorted(output) == ["logits", "stage1", "stage3"]
    assert output["stage1"].shape == [1, 128, 8, 8]
    assert output["stage3"].shape == [1, 512, 4, 4]  # the last stage no longer halves
    with pytest.raises(ComponentArgumentError, match=r"ResNet18: stride_list needs 5 positive strides"):
        REGISTRY.build("backbone", "ResNet18", {"stride_list": [2, 2]})


def test_return_patterns_name_layers_as_paddleclas_writes_them():
    model = REGISTRY.build("backbone", "PPLCNet_x0_25", {"return_patterns": ["blocks3", "blocks5[1]"], "class_num": 4})
    model.eval()
    with paddle.no_grad():
        output = model(_images(1, 64, seed=3))
        again = model(_images(1, 64, seed=3))
    assert sorted(output) == ["blocks3", "blocks5[1]", "logits"]
    assert output["blocks3"].shape == [1, 16, 16, 16] and output["blocks5[1]"].shape == [1, 64, 4, 4]
    np.testing.assert_array_equal(output["blocks3"].numpy(), again["blocks3"].numpy())
    with pytest.raises(ComponentArgumentError, match=r"PPLCNet_x0_25: return_patterns: no layer 'block3'; close: blocks3"):
        REGISTRY.build("backbone", "PPLCNet_x0_25", {"return_patterns": ["block3"]})


def test_googlenet_auxiliary_heads_in_training():
    model = REGISTRY.build("backbone", "GoogLeNet", {"class_num": 5, "aux_logits": True})
    images = _images(2, 224, seed=4)
    model.train()
    output = model(images)
    assert sorted(output) == ["aux_logits1", "aux_logits2", "logits"]
    assert all(output[key].shape == [2, 5] for key in output)
    model.eval()
    with paddle.no_grad():
        assert model(images).shape == [2, 5]
    # with stage outputs too, one dict holds them all
    model = REGISTRY.build("backbone", "GoogLeNet", {"aux_logits": True, "return_stages": [2]})
    model.train()
    output = model(images)
    assert sorted(output) == ["aux_logits1", "aux_logits2", "logits", "stage2"]
    assert output["stage2"].shape == [2, 1024, 6, 6]  # its max-pools do not pad
    model.eval()
    with paddle.no_grad():
        assert sorted(model(images)) == ["logits", "stage2"]


def test_docs_and_details_show_the_groups_and_the_published_weights():
    builder = REGISTRY.resolve("backbone", "ResNet50_vd").load()
    doc = " ".join(builder.__doc__.split())
    # the variant's fixed architecture, its family's groups, and what every backbone takes
    assert doc.startswith("ResNet50_vd: ResNet(depth=50, vd=True).")
    assert "``lr_mult_list`` has 5 values: stem, stage0-stage3" in doc
    assert "lr_mult_list: one learning-rate multiplier per parameter group" in doc
    assert list(inspect.signature(builder).parameters) == [
        "class_num", "pretrained", "use_ssld", "stride_list", "stem_act", "max_pool", "input_image_channel",
        "data_format", "layer_type", "use_first_short_conv", "lr_mult_list", "return_stages", "return_patterns",
    ]
    details = builder.corolla_details()
    assert "ResNet50_vd       top-1  79.12%  input 224" in details
    assert "ResNet50_vd_ssld  top-1  83.00%  input 224" in details
    assert "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/ResNet50_vd_ssld_pretrained.pdparams" in details


def test_lean_batchnorm_matches_paddles_in_training_and_eval():
    paddle.seed(5)
    lean, reference = LeanBatchNorm2D(6), paddle.nn.BatchNorm2D(6)
    reference.set_state_dict(lean.state_dict())
    for step in range(3):
        images = paddle.to_tensor(np.random.default_rng(step).normal(step, step + 1, (4, 6, 5, 5)).astype(np.float32))
        for mode in ("train", "eval"):
            lean.train() if mode == "train" else lean.eval()
            reference.train() if mode == "train" else reference.eval()
            np.testing.assert_allclose(lean(images).numpy(), reference(images).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lean._mean.numpy(), reference._mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(lean._variance.numpy(), reference._variance.numpy(), rtol=1e-6)
    assert not np.allclose(lean._mean.numpy(), 0)  # the running statistics did move
