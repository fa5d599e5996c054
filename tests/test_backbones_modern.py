"""What the modern families (ConvNeXt, StarNet, FasterNet, MobileViT/V2/V3, DSNet) do beyond
the registry-wide contract and parity tests: stage layout, family options, the training
details PaddleClas sets (stochastic depth, dropout, BatchNorm momentum), which input sizes
each accepts, and their weights tables. Small nets only: tiny configurations of the model
classes where a registered variant would be slow to build."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from corolla import load_registry
from corolla.api import MODEL_ZOO_URL, ComponentArgumentError
from corolla.plugins.backbones import (
    _mobilevit,
    _regularize,
    convnext,
    dsnet,
    fasternet,
    mobilevit,
    mobilevit_v2,
    mobilevit_v3,
    starnet,
)

REGISTRY = load_registry()
FAMILIES = (convnext, starnet, fasternet, mobilevit, mobilevit_v2, mobilevit_v3, dsnet)


def _build(name: str, **params) -> paddle.nn.Layer:
    return REGISTRY.build("backbone", name, params)


def _images(batch: int, size: int, seed: int = 0) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal((batch, 3, size, size), dtype=np.float32))


def _eval(model: paddle.nn.Layer, images: paddle.Tensor):
    model.eval()
    with paddle.no_grad():
        return model(images)


def _tiny_convnext(**options) -> convnext.ConvNeXt:
    return convnext.ConvNeXt(name="ConvNeXt_test", depths=(1, 1, 2, 1), dims=(8, 16, 32, 64), **options)


def _lr_mult(param: paddle.Tensor) -> float:
    return round(float(param.optimize_attr["learning_rate"]), 6)


# --- stages -----------------------------------------------------------------------------------

STAGES_AT_64 = {
    "StarNet_S1": [[1, 24, 16, 16], [1, 48, 8, 8], [1, 96, 4, 4], [1, 192, 2, 2]],
    "FasterNet_T0": [[1, 40, 16, 16], [1, 80, 8, 8], [1, 160, 4, 4], [1, 320, 2, 2]],
    "MobileViT_XXS": [[1, 16, 32, 32], [1, 24, 16, 16], [1, 48, 8, 8], [1, 64, 4, 4], [1, 80, 2, 2]],
    "MobileViTV2_x0_5": [[1, 32, 32, 32], [1, 64, 16, 16], [1, 128, 8, 8], [1, 192, 4, 4], [1, 256, 2, 2]],
    "MobileViTV3_XXS": [[1, 16, 32, 32], [1, 24, 16, 16], [1, 64, 8, 8], [1, 80, 4, 4], [1, 128, 2, 2]],
    "MobileViTV3_x0_5": [[1, 32, 32, 32], [1, 64, 16, 16], [1, 128, 8, 8], [1, 192, 4, 4], [1, 256, 2, 2]],
    "DSNet_tiny": [[1, 64, 16, 16], [1, 128, 8, 8], [1, 320, 4, 4], [1, 512, 2, 2]],
}


@pytest.mark.parametrize("name", list(STAGES_AT_64))
def test_stages_are_the_multi_scale_feature_maps(name):
    output = _eval(_build(name, return_stages=True, class_num=3), _images(1, 64))
    assert output["logits"].shape == [1, 3]
    assert [output[f"stage{i}"].shape for i in range(len(output) - 1)] == STAGES_AT_64[name]


def test_convnext_stages_and_lr_groups():
    model = _tiny_convnext(return_stages=True, lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    output = _eval(model, _images(1, 64))
    assert [output[f"stage{i}"].shape for i in range(4)] == [[1, 8, 16, 16], [1, 16, 8, 8], [1, 32, 4, 4], [1, 64, 2, 2]]
    # the downsampling layer before stage i trains with stage i's multiplier; the head keeps 1.0
    assert {_lr_mult(p) for p in model.downsample_layers[0].parameters()} == {0.1}
    assert {_lr_mult(p) for p in model.downsample_layers[2].parameters()} == {0.4}
    assert {_lr_mult(p) for p in model.stages[2].parameters()} == {0.4}
    assert {_lr_mult(p) for p in [*model.norm.parameters(), *model.head.parameters()]} == {1.0}


def test_fasternet_merges_train_with_the_stage_after_them():
    model = _build("FasterNet_T0", lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert {_lr_mult(p) for p in model.patch_embed.parameters() if p.trainable} == {0.1}
    assert {_lr_mult(p) for p in model.stages[1].parameters() if p.trainable} == {0.3}  # merge before stage 1
    assert {_lr_mult(p) for p in model.stages[2].parameters() if p.trainable} == {0.3}
    assert {_lr_mult(p) for p in model.avgpool_pre_head.parameters()} == {1.0}


# --- ConvNeXt ---------------------------------------------------------------------------------


def test_convnext_layer_scale_and_head_init_scale():
    model = _tiny_convnext(layer_scale_init_value=0.5, head_init_scale=0.01)
    gammas = [block.gamma.numpy() for stage in model.stages for block in stage]
    assert all(np.all(gamma == 0.5) for gamma in gammas)
    assert np.std(model.head.weight.numpy()) == pytest.approx(0.02 * 0.01, rel=0.15)
    assert np.all(model.head.bias.numpy() == 0)
    assert np.std(_tiny_convnext().head.weight.numpy()) == pytest.approx(0.02, rel=0.15)

    without = _tiny_convnext(layer_scale_init_value=0.0)
    assert not any(key.endswith("gamma") for key in without.state_dict())
    assert _eval(without, _images(1, 32)).shape == [1, 1000]


def test_convnext_channels_first_layer_norm_normalises_each_pixel_over_channels():
    norm = convnext.LayerNorm2D(6, epsilon=1e-6)
    x = paddle.to_tensor(np.random.default_rng(1).normal(3, 2, (2, 6, 3, 4)).astype(np.float32))
    y = norm(x).numpy()
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=1), 1, atol=1e-3)


# --- stochastic depth and dropout ----------------------------------------------------------------


def test_drop_path_drops_whole_samples_in_training_only():
    paddle.seed(3)
    layer = _regularize.DropPath(0.5)
    x = paddle.ones([256, 3, 2, 2])
    layer.train()
    y = layer(x).numpy().reshape(256, -1)
    kept = y[:, 0] > 0
    assert np.all(y[kept] == 2.0) and np.all(y[~kept] == 0.0)  # kept samples scaled by 1 / (1 - rate)
    assert 0.35 < kept.mean() < 0.65
    layer.eval()
    assert np.all(layer(x).numpy() == 1.0)
    assert _regularize.drop_path_rates(0.3, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_drop_path_rates_rise_over_the_blocks():
    model = _tiny_convnext(drop_path_rate=0.2)  # 5 blocks
    rates = [block.drop_path.rate for stage in model.stages for block in stage]
    assert rates == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    stages = _build("StarNet_S1", drop_path_rate=0.3).stages
    starnet_rates = [block.drop_path.rate for stage in stages for block in stage[1:]]  # after each downsampler
    assert starnet_rates[0] == 0.0 and starnet_rates[-1] == pytest.approx(0.3)


def test_fasternet_drop_path_defaults_to_the_variants_published_rate():
    def last_rate(model):
        return model.stages[-1].blocks[-1].drop_path.rate

    assert last_rate(_build("FasterNet_T1")) == pytest.approx(0.02)
    assert last_rate(_build("FasterNet_T0")) == 0.0
    assert last_rate(_build("FasterNet_T1", drop_path_rate=0.0)) == 0.0
    assert last_rate(_build("FasterNet_T0", drop_path_rate=0.1)) == pytest.approx(0.1)


def test_fasternet_keeps_paddleclas_batchnorm_momentum_and_partial_convolution():
    model = _build("FasterNet_T0")
    # PaddleClas's stem norm takes PyTorch's 0.1 as Paddle's momentum: new batches weigh 0.9
    assert model.patch_embed.norm._momentum == pytest.approx(0.1)
    assert model.stages[1].norm._momentum == pytest.approx(0.9)

    partial = fasternet.PartialConv(8)
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal((1, 8, 5, 5), dtype=np.float32))
    y = partial(x).numpy()
    np.testing.assert_array_equal(y[:, 2:], x.numpy()[:, 2:])  # only the first quarter is convolved
    assert not np.allclose(y[:, :2], x.numpy()[:, :2])


def test_starnet_stem_width_and_optional_classifier_dropout():
    model = _build("StarNet_S1")
    assert model.stem[0].conv.weight.shape == [32, 3, 3, 3]  # 32 whatever the base width (24 here)
    assert model.stages[0][0].conv.weight.shape == [24, 32, 3, 3]
    assert model.dropout is None
    dropped = _build("StarNet_S1", drop_rate=0.2)
    assert isinstance(dropped.dropout, paddle.nn.Dropout) and dropped.dropout.p == 0.2


def test_dsnet_restarts_the_drop_path_schedule_in_every_stage_like_paddleclas():
    model = _build("DSNet_tiny", drop_path_rate=0.4)  # 9 blocks: rates 0, 0.05, ... 0.4
    assert [block.drop_path.rate for block in model.blocks1] == pytest.approx([0.0, 0.05])
    assert [block.drop_path.rate for block in model.blocks3] == pytest.approx([0.0, 0.05, 0.1, 0.15])
    assert model.blocks4[0].drop_path.rate == 0.0
    assert model.blocks2[0].attn.attn_drop.p == 0.1  # fixed by PaddleClas
    assert _build("DSNet_tiny").blocks3[3].drop_path.rate == pytest.approx(0.1 * 3 / 8)  # default rate 0.1


def test_mobilevit_v3_dropouts():
    model = _build("MobileViTV3_XXS", dropout=0.2, classifier_dropout=0.0)
    assert model.classifier.dropout is None
    encoder = model.layer_3[1].global_rep[0]
    assert encoder.pre_norm_mha[2].p == 0.2 and encoder.pre_norm_ffn[5].p == 0.2
    assert _build("MobileViTV3_XXS").classifier.dropout.p == 0.1

    linear = _build("MobileViTV3_x0_5", classifier_dropout=0.0)
    assert linear.classifier.dropout is None
    assert linear.layer_4[1].global_rep[0].pre_norm_attn[2].p == 0.0  # PaddleClas: no dropout here
    assert _build("MobileViTV3_x0_5", dropout=0.1).layer_4[1].global_rep[0].pre_norm_ffn[5].p == 0.1


@pytest.mark.parametrize(
    "name, arguments, message",
    [
        ("ConvNeXt_tiny", {"drop_path_rate": 1.5}, r"ConvNeXt_tiny: drop_path_rate must be a number in \[0, 1\); got 1.5"),
        ("ConvNeXt_tiny", {"layer_scale_init_value": -1.0}, r"ConvNeXt_tiny: layer_scale_init_value must be >= 0"),
        ("StarNet_S1", {"drop_rate": 1.0}, r"StarNet_S1: drop_rate must be a number in \[0, 1\)"),
        ("FasterNet_T0", {"drop_path_rate": -0.1}, r"FasterNet_T0: drop_path_rate must be a number in \[0, 1\)"),
        ("MobileViTV3_XXS", {"classifier_dropout": 1.0}, r"MobileViTV3_XXS: classifier_dropout must be a number in \[0, 1\)"),
        ("MobileViTV3_x0_5", {"dropout": 2}, r"MobileViTV3_x0_5: dropout must be a number in \[0, 1\)"),
        ("DSNet_tiny", {"drop_rate": 1.0}, r"DSNet_tiny: drop_rate must be a number in \[0, 1\)"),
    ],
)
def test_bad_rates_are_errors_that_name_the_model(name, arguments, message):
    with pytest.raises(ComponentArgumentError, match=message):
        _build(name, **arguments)


# --- input sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["MobileViT_XXS", "MobileViTV3_XXS"])
def test_mobilevit_resizes_maps_that_do_not_split_into_patches(name):
    logits = _eval(_build(name, class_num=4), _images(1, 80))  # maps of 5x5 and 3x3 at strides 16, 32
    assert logits.shape == [1, 4] and np.isfinite(logits.numpy()).all()


@pytest.mark.parametrize("name", ["MobileViTV2_x0_5", "MobileViTV3_x0_5"])
def test_separable_attention_variants_need_multiples_of_64(name):
    model = _build(name, class_num=4)
    assert _eval(model, _images(1, 128)).shape == [1, 4]
    with pytest.raises(ValueError, match=r"LinearAttentionBlock: a 3x3 feature map does not split into 2x2 patches; "
                                         r"use an input size that is a multiple of 64"):
        _eval(model, _images(1, 96))


def test_minimum_input_sizes():
    assert mobilevit_v2.MIN_INPUT_SIZE == 64
    assert mobilevit_v3.MIN_INPUT_SIZE("MobileViTV3_XXS_L2") == 32
    assert mobilevit_v3.MIN_INPUT_SIZE("MobileViTV3_x0_75") == 64
    assert dsnet.MIN_INPUT_SIZE == 224  # PaddleClas's own DSNet asserts 224; corolla's does not:
    for size in (64, 96):
        assert _eval(_build("DSNet_tiny", class_num=2), _images(1, size)).shape == [1, 2]


def test_patches_and_tokens_round_trip():
    x = paddle.arange(2 * 3 * 4 * 6, dtype="float32").reshape([2, 3, 4, 6])
    patches = _mobilevit.to_patches(x)
    assert patches.shape == [2, 3, 4, 6]  # [B, C, pixels per 2x2 patch, patches]
    np.testing.assert_array_equal(patches.numpy()[0, 0, :, 0], [0, 1, 6, 7])  # the top-left patch, row-major
    np.testing.assert_array_equal(patches.numpy()[0, 0, 0, :], [0, 2, 4, 12, 14, 16])
    np.testing.assert_array_equal(_mobilevit.from_patches(patches, 4, 6).numpy(), x.numpy())
    tokens = _mobilevit.to_tokens(x)
    assert tokens.shape == [8, 6, 3]  # one sequence of patches per pixel position
    np.testing.assert_array_equal(_mobilevit.from_tokens(tokens, 4, 6).numpy(), x.numpy())


# --- weights --------------------------------------------------------------------------------------

UNPUBLISHED = {"MobileViTV2_x0_75", "MobileViTV2_x1_25", "MobileViTV2_x1_75"}


@pytest.mark.parametrize("family", FAMILIES, ids=lambda module: module.__name__.rpartition(".")[2])
def test_weights_tables_cover_the_published_variants(family):
    assert set(family.WEIGHTS) == set(family.VARIANTS) - UNPUBLISHED
    for name, weights in family.WEIGHTS.items():
        assert weights.url == f"{MODEL_ZOO_URL}{name}_pretrained.pdparams"
        assert 0.6 < weights.top1 < 0.86


def test_weights_record_their_input_size_and_accuracy():
    assert (convnext.WEIGHTS["ConvNeXt_base_384"].input_size, convnext.WEIGHTS["ConvNeXt_base_384"].top1) == (384, 0.8490)
    assert convnext.WEIGHTS["ConvNeXt_tiny"].input_size == 224
    assert {w.input_size for family in (mobilevit, mobilevit_v2, mobilevit_v3) for w in family.WEIGHTS.values()} == {256}
    assert fasternet.WEIGHTS["FasterNet_L"].top1 == 0.835
    assert dsnet.WEIGHTS["DSNet_tiny"].top1 == 0.792
    details = REGISTRY.resolve("backbone", "MobileViTV2_x0_75").load().corolla_details()
    assert "none published" in details
