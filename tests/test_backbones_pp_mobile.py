"""What the pp_mobile families (PP-HGNet, PP-HGNetV2, PP-LCNetV2, ESNet, GhostNet,
MobileNetV4, MobileNeXt, MicroNet) do beyond the registry-wide contract and parity tests:
stage layout, the options PaddleClas configs pass, per-parameter training details and
the published weights."""
from __future__ import annotations

import numpy as np
import paddle
import pytest
from _backbone_cases import paddleclas

from corolla import load_registry
from corolla.api import MODEL_ZOO_URL, ComponentArgumentError, apply_state_dict
from corolla.plugins.backbones import _regularize, mobilenet_v4, mobilenext, pphgnet, pphgnet_v2, pplcnet_v2

REGISTRY = load_registry()


def _build(name: str, **params) -> paddle.nn.Layer:
    return REGISTRY.build("backbone", name, params)


def _images(batch: int, size: int, seed: int = 0) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal((batch, 3, size, size), dtype=np.float32))


def _eval(model: paddle.nn.Layer, images: paddle.Tensor):
    model.eval()
    with paddle.no_grad():
        return model(images)


def _stage_shapes(name: str, size: int = 64, **params) -> list[list[int]]:
    output = _eval(_build(name, return_stages=True, **params), _images(1, size))
    return [output[f"stage{i}"].shape for i in range(len(output) - 1)]


def _lr(param: paddle.Tensor) -> float:
    return round(float(param.optimize_attr["learning_rate"]), 6)


# --- PP-HGNet ---------------------------------------------------------------------------


def test_pphgnet_stages_follow_paddleclas_widths_and_strides():
    assert _stage_shapes("PPHGNet_tiny") == [[1, 224, 16, 16], [1, 448, 8, 8], [1, 512, 4, 4], [1, 768, 2, 2]]


def test_pphgnet_head_options():
    model = _build("PPHGNet_tiny", use_last_conv=False, class_num=5)
    assert model.last_conv is None and model.fc.weight.shape == [768, 5]
    assert _eval(model, _images(2, 32)).shape == [2, 5]
    model = _build("PPHGNet_tiny", class_expand=256, dropout_prob=0.1)
    assert model.last_conv.weight.shape == [256, 768, 1, 1] and model.fc.weight.shape == [256, 1000]
    assert model.dropout.p == 0.1
    with pytest.raises(ComponentArgumentError, match=r"PPHGNet_tiny: dropout_prob must be a number in \[0, 1\)"):
        _build("PPHGNet_tiny", dropout_prob=1.5)


def test_pphgnet_lr_mult_list_reaches_stem_and_stages_and_norms_skip_decay():
    model = _build("PPHGNet_tiny", lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert {_lr(p) for p in model.stem.parameters() if p.trainable} == {0.1}
    for i, stage in enumerate(model.stages):
        assert {_lr(p) for p in stage.parameters() if p.trainable} == {round(0.2 + 0.1 * i, 6)}
    assert _lr(model.fc.weight) == _lr(model.last_conv.weight) == 1.0
    bn = model.stem[0].bn
    assert bn.weight.regularizer is not None and bn.weight.regularizer._coeff == 0.0


def test_pphgnet_weights_table():
    table = pphgnet.WEIGHTS
    assert table["PPHGNet_small"].url == MODEL_ZOO_URL + "legendary_models/PPHGNet_small_pretrained.pdparams"
    assert table["PPHGNet_small_ssld"].top1 == 0.8382
    # PaddleClas publishes PPHGNet_base only distilled, and loads it by default
    assert table["PPHGNet_base"].url == table["PPHGNet_base_ssld"].url
    assert table["PPHGNet_base"].url.endswith("legendary_models/PPHGNet_base_ssld_pretrained.pdparams")


# --- PP-HGNetV2 -------------------------------------------------------------------------


def test_pphgnet_v2_stages_follow_paddleclas_widths_and_strides():
    assert _stage_shapes("PPHGNetV2_B0") == [[1, 64, 16, 16], [1, 256, 8, 8], [1, 512, 4, 4], [1, 1024, 2, 2]]


def test_pphgnet_v2_learnable_affine_blocks_train_at_a_hundredth_of_their_stage_rate():
    model = _build("PPHGNetV2_B0", lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    affine = model.stages[2].blocks[0].layers[0].conv2.lab
    assert [p.shape for p in affine.parameters()] == [[1], [1]]
    assert {_lr(p) for p in affine.parameters()} == {0.004}  # stages[2] is the fourth group
    assert _lr(model.stages[2].blocks[0].layers[0].conv2.conv.weight) == 0.4
    assert {_lr(p) for p in model.stem.stem1.lab.parameters()} == {0.001}
    assert {_lr(p) for p in model.lab.parameters()} == {0.01}  # the head's, outside every group
    # the big variants have none
    with paddle.LazyGuard():
        big = _build("PPHGNetV2_B4")
    assert not any("lab" in key for key in big.state_dict())


def test_pphgnet_v2_head_options():
    model = _build("PPHGNetV2_B0", use_last_conv=False, class_num=3)
    assert model.last_conv is None and model.fc.weight.shape == [1024, 3]
    assert _eval(model, _images(2, 32)).shape == [2, 3]
    assert _build("PPHGNetV2_B0", class_expand=64).fc.weight.shape == [64, 1000]


def test_pphgnet_v2_weights_are_the_ssld_stages():
    table = pphgnet_v2.WEIGHTS
    assert table["PPHGNetV2_B0"].url == MODEL_ZOO_URL + "legendary_models/PPHGNetV2_B0_ssld_stage1_pretrained.pdparams"
    assert table["PPHGNetV2_B0"].top1 is None
    assert table["PPHGNetV2_B6_ssld"].url == MODEL_ZOO_URL + "legendary_models/PPHGNetV2_B6_ssld_pretrained.pdparams"
    assert table["PPHGNetV2_B6_ssld"].top1 == 0.8630


# --- PP-LCNetV2 -------------------------------------------------------------------------


def _randomise_batchnorm_statistics(model: paddle.nn.Layer, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            layer._mean.set_value(rng.normal(0, 0.1, layer._mean.shape).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, layer._variance.shape).astype("float32"))
            layer.weight.set_value(rng.uniform(0.5, 1.5, layer.weight.shape).astype("float32"))


def test_pplcnet_v2_stages_follow_paddleclas_widths_and_strides():
    assert _stage_shapes("PPLCNetV2_small") == [[1, 96, 16, 16], [1, 192, 8, 8], [1, 384, 4, 4], [1, 768, 2, 2]]


def test_pplcnet_v2_re_parameterize_folds_the_depthwise_branches_without_changing_outputs():
    model = _build("PPLCNetV2_small")
    _randomise_batchnorm_statistics(model)
    images = _images(2, 64)
    before = _eval(model, images).numpy()
    block = model.stages[2][0]
    assert [branch.conv.weight.shape[-1] for branch in block.dw_conv_list] == [5, 3]  # no 1x1 at stride 2
    assert [branch.conv.weight.shape[-1] for branch in model.stages[2][1].dw_conv_list] == [5, 3, 1]
    # the fused conv is never trained: only re_parameterize writes it
    assert block.dw_conv.weight.stop_gradient and block.dw_conv.bias.stop_gradient
    assert model.inference_model() is model  # what export and infer run
    assert block.is_repped
    after = _eval(model, images).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-4 * np.abs(before).max())


@pytest.mark.parametrize("act", ["prelu", "hardswish"])
def test_pplcnet_v2_activation_option_matches_paddleclas(act):
    with paddle.utils.unique_name.guard():
        theirs = paddleclas().arch.backbone.PPLCNetV2_small(act=act)
    ours = _build("PPLCNetV2_small", act=act)
    _randomise_batchnorm_statistics(theirs)
    apply_state_dict(ours, {k: v.numpy() for k, v in theirs.state_dict().items()}, name="PPLCNetV2_small", source="PaddleClas", strict=True)
    images = _images(2, 32)
    expected = _eval(theirs, images).numpy()
    np.testing.assert_allclose(_eval(ours, images).numpy(), expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    with pytest.raises(ComponentArgumentError, match="PPLCNetV2_small: act must be one of relu, hardswish"):
        _build("PPLCNetV2_small", act="gelu")


def test_pplcnet_v2_weights_table():
    assert pplcnet_v2.WEIGHTS["PPLCNetV2_base_ssld"].top1 == 0.8007
    assert pplcnet_v2.WEIGHTS["PPLCNetV2_large"].url == MODEL_ZOO_URL + "legendary_models/PPLCNetV2_large_pretrained.pdparams"


# --- ESNet ------------------------------------------------------------------------------


def test_esnet_stages_end_where_paddleclas_stage_patterns_do():
    model = _build("ESNet_x0_25", return_patterns=["blocks[2]", "blocks[9]", "blocks[12]"], return_stages=True)
    output = _eval(model, _images(1, 64))
    assert [output[f"stage{i}"].shape for i in range(3)] == [[1, 32, 8, 8], [1, 56, 4, 4], [1, 120, 2, 2]]
    for i, pattern in enumerate(["blocks[2]", "blocks[9]", "blocks[12]"]):
        np.testing.assert_array_equal(output[pattern].numpy(), output[f"stage{i}"].numpy())


def test_esnet_head_options_and_groups():
    model = _build("ESNet_x0_25", class_expand=320, dropout_prob=0.0, lr_mult_list=[0.1, 0.2, 0.3, 0.4], class_num=4)
    assert model.last_conv.weight.shape == [320, 1024, 1, 1] and model.fc.weight.shape == [320, 4]
    assert model.dropout is None
    assert {_lr(p) for p in model.blocks[3:10].parameters() if p.trainable} == {0.3}
    assert _lr(model.conv2.conv.weight) == 1.0
    with pytest.raises(ComponentArgumentError, match="ESNet_x0_25: class_expand must be a positive"):
        _build("ESNet_x0_25", class_expand=0)


# --- GhostNet ---------------------------------------------------------------------------


def test_ghostnet_stages_end_before_the_map_halves():
    assert _stage_shapes("GhostNet_x0_5") == [[1, 8, 32, 32], [1, 12, 16, 16], [1, 20, 8, 8], [1, 56, 4, 4], [1, 80, 2, 2]]
    model = _build("GhostNet_x0_5", lr_mult_list=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert {_lr(p) for p in model._ghostbottleneck_5.parameters() if p.trainable} == {0.4}
    assert {_lr(p) for p in model.fc_0.parameters() if p.trainable} == {1.0}


# --- MobileNetV4 ------------------------------------------------------------------------


def test_mobilenet_v4_stages_follow_paddleclas_stage_patterns():
    assert _stage_shapes("MobileNetV4_conv_small") == [
        [1, 32, 16, 16], [1, 64, 8, 8], [1, 96, 4, 4], [1, 128, 2, 2], [1, 960, 2, 2]
    ]
    for name, ends in [
        ("MobileNetV4_conv_medium", [0, 2, 10, 21, 22]),
        ("MobileNetV4_conv_large", [0, 2, 13, 26, 27]),
        ("MobileNetV4_hybrid_medium", [0, 2, 14, 30, 31]),
        ("MobileNetV4_hybrid_large", [0, 2, 17, 35, 36]),
    ]:
        assert mobilenet_v4._stage_ends(mobilenet_v4.ARCHS[name.removeprefix("MobileNetV4_")]) == ends, name


def test_mobilenet_v4_config_options():
    model = _build("MobileNetV4_conv_small", drop_rate=0.25, drop_path_rate=0.34, class_expand=640, class_num=6)
    assert model.dropout.p == 0.25 and model.classifier.weight.shape == [640, 6]
    # stochastic depth rises with depth, on residual branches only
    assert model.blocks[5].drop_path.rate == pytest.approx(0.34 * 5 / 17)
    assert model.blocks[4].has_shortcut is False and model.blocks[5].has_shortcut
    assert not any(isinstance(layer, _regularize.DropPath) for layer in model.blocks[16].sublayers(include_self=True))
    model.train()
    assert model(_images(4, 32)).shape == [4, 6]
    with pytest.raises(ComponentArgumentError, match=r"MobileNetV4_conv_small: drop_path_rate must be a number in \[0, 1\)"):
        _build("MobileNetV4_conv_small", drop_path_rate=1.0)


@pytest.mark.parametrize("use_fused_attn", [False, True])
def test_mobilenet_v4_attention_matches_paddleclas_on_both_of_its_paths(use_fused_attn):
    # one block on an 8x8 map (the 32-pixel parity case leaves the attention a single key);
    # PaddleClas's two paths differ in the score scale
    theirs_class = paddleclas().arch.backbone.legendary_models.mobilenet_v4.MobileAttention
    with paddle.utils.unique_name.guard():
        theirs = theirs_class(160, 160, 3, 1, 4, 256, 64, 2, layer_scale_init_value=0.5, use_fused_attn=use_fused_attn)
    ours = mobilenet_v4.MobileAttention(
        160, 160, kv_dim=64, kernel_size=3, heads=4, kv_stride=2, stride=1,
        layer_scale_init=0.5, drop_path_rate=0.0, use_fused_attn=use_fused_attn,
    )
    _randomise_batchnorm_statistics(theirs)
    apply_state_dict(ours, {k: v.numpy() for k, v in theirs.state_dict().items()}, name="MobileAttention", source="PaddleClas", strict=True)
    images = paddle.to_tensor(np.random.default_rng(2).standard_normal((2, 160, 8, 8), dtype=np.float32))
    expected = _eval(theirs, images).numpy()
    np.testing.assert_allclose(_eval(ours, images).numpy(), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_mobilenet_v4_weights_carry_paddleclas_evaluation_sizes():
    table = mobilenet_v4.WEIGHTS
    assert {name: (w.top1, w.input_size) for name, w in table.items()} == {
        "MobileNetV4_conv_small": (0.746, 256),
        "MobileNetV4_conv_medium": (0.799, 320),
        "MobileNetV4_conv_large": (0.834, 448),
        "MobileNetV4_hybrid_medium": (0.805, 256),
        "MobileNetV4_hybrid_large": (0.838, 448),
    }


# --- MobileNeXt -------------------------------------------------------------------------


def test_mobilenext_stages_and_sandglass_layouts():
    assert _stage_shapes("MobileNeXt_x0_35") == [[1, 48, 16, 16], [1, 64, 8, 8], [1, 136, 4, 4], [1, 1280, 2, 2]]
    with paddle.LazyGuard():
        model = _build("MobileNeXt_x1_0")
    layouts = [
        (len(block.conv), [block.conv[i]._stride for i in range(len(block.conv)) if isinstance(block.conv[i], paddle.nn.Conv2D)], block.identity)
        for block in model.features[1:5]
    ]
    assert layouts == [
        (10, [[1, 1], [1, 1], [1, 1], [2, 2]], False),  # first block: both depthwise convs, stride on the last
        (10, [[1, 1], [1, 1], [1, 1], [1, 1]], False),  # keep_3x3: both, no shortcut
        (7, [[1, 1], [1, 1], [2, 2]], False),  # widening at stride 2: the last depthwise only
        (10, [[1, 1], [1, 1], [1, 1], [1, 1]], True),  # same width: both, with the shortcut
    ]
    assert mobilenext.WEIGHTS["MobileNeXt_x1_0"].url == MODEL_ZOO_URL + "MobileNeXt_x1_0_pretrained.pdparams"
    assert set(mobilenext.WEIGHTS) == {"MobileNeXt_x1_0"}


# --- MicroNet ---------------------------------------------------------------------------


def test_micronet_stages_and_block_layouts():
    assert _stage_shapes("MicroNet_M0") == [[1, 8, 16, 16], [1, 12, 8, 8], [1, 32, 4, 4], [1, 384, 2, 2]]
    with paddle.LazyGuard():
        m3 = _build("MicroNet_M3")
    kinds = [type(layer).__name__ for layer in m3.features[4].layers]
    # pointwise-depthwise-pointwise; M3 has Dynamic Shift-Max only after the depthwise conv
    assert kinds == [
        "GroupConv", "ReLU6", "ChannelShuffle", "FactorizedConv", "Identity", "DynamicShiftMax",
        "ChannelShuffle", "GroupConv", "Identity", "ChannelShuffle", "Identity",
    ]
    assert m3.features[4].layers[5].branches == 4
    assert [type(layer).__name__ for layer in m3.features[-1].layers] == ["GroupConv", "Identity"]


def test_micronet_logits_are_hard_swished_like_paddleclas():
    logits = _eval(_build("MicroNet_M0", class_num=10), _images(2, 32)).numpy()
    assert logits.shape == (2, 10) and logits.min() >= -0.375 - 1e-6  # hard-swish's minimum
