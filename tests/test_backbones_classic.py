"""What the classic families (DenseNet, HarDNet, PeleeNet, SqueezeNet, Xception, Xception
deeplab, InceptionV3, DarkNet53, CSPDarkNet53) do beyond the registry-wide contract and
parity tests: their stages, parameter groups, own arguments and weights tables."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from corolla import load_registry
from corolla.api import MODEL_ZOO_URL, ComponentArgumentError
from corolla.plugins.backbones import (
    _checks,
    _init,
    cspnet,
    darknet,
    densenet,
    hardnet,
    inception_v3,
    peleenet,
    squeezenet,
    xception,
    xception_deeplab,
)

REGISTRY = load_registry()


def _build(name: str, **params) -> paddle.nn.Layer:
    return REGISTRY.build("backbone", name, params)


def _images(batch: int, size: int, seed: int = 0) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal((batch, 3, size, size), dtype=np.float32))


def _stage_shapes(model: paddle.nn.Layer, size: int) -> list[list[int]]:
    model.eval()
    with paddle.no_grad():
        output = model(_images(1, size))
    return [output[f"stage{i}"].shape for i in range(model.stage_count)]


def _lr_mults(layer: paddle.nn.Layer) -> set[float]:
    return {round(float(p.optimize_attr["learning_rate"]), 6) for p in layer.parameters() if p.trainable}


# --- shared helpers ------------------------------------------------------------------------


def test_uniform_linear_bounds_its_weight_by_the_fan_in():
    paddle.seed(0)
    layer = _init.uniform_linear(400, 300)
    weight = np.abs(layer.weight.numpy())
    assert weight.max() <= 0.05 and weight.max() > 0.049  # 1 / sqrt(400)
    assert not layer.bias.numpy().any()


@pytest.mark.parametrize("bad", [-0.1, 1.0, "0.2", True, None])
def test_check_rate_names_the_model_and_the_argument(bad):
    with pytest.raises(ComponentArgumentError, match=r"Net: drop must be a number in \[0, 1\)"):
        _checks.check_rate("Net", "drop", bad)
    assert _checks.check_rate("Net", "drop", 0) == 0.0


# --- DenseNet ------------------------------------------------------------------------------


def test_densenet121_stages_grow_by_the_growth_rate_and_halve_at_each_transition():
    model = _build("DenseNet121", return_stages=True)
    # 64 + 6*32; /2 + 12*32; /2 + 24*32; /2 + 16*32 channels, at strides 4, 8, 16, 32
    assert _stage_shapes(model, 64) == [[1, 256, 16, 16], [1, 512, 8, 8], [1, 1024, 4, 4], [1, 1024, 2, 2]]
    assert model.out.weight.shape == [1024, 1000]


def test_densenet_lr_groups_are_the_stem_then_each_block_with_its_transition():
    model = _build("DenseNet121", lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert _lr_mults(model.conv1_func) == {0.1}
    assert _lr_mults(model.db_conv_2) == _lr_mults(model.tr_conv2_blk) == {0.2}
    assert _lr_mults(model.db_conv_4) == _lr_mults(model.tr_conv4_blk) == {0.4}
    assert _lr_mults(model.db_conv_5) == _lr_mults(model.batch_norm) == {0.5}
    assert _lr_mults(model.out) == {1.0}


def test_densenet_bn_size_sets_the_bottleneck_width_and_dropout_acts_in_training():
    model = _build("DenseNet121", bn_size=2, dropout=0.5, class_num=3)
    first = model.db_conv_2.conv2_1
    assert first.bn_ac_func1._conv.weight.shape == [64, 64, 1, 1]  # 2 * growth rate 32
    assert first.bn_ac_func2._conv.weight.shape == [32, 64, 3, 3]
    images = _images(2, 64)
    model.train()
    with paddle.no_grad():
        assert not np.allclose(model(images).numpy(), model(images).numpy())
        model.eval()
        np.testing.assert_array_equal(model(images).numpy(), model(images).numpy())


@pytest.mark.parametrize("options, message", [
    ({"bn_size": 0}, r"DenseNet121: bn_size must be a positive integer; got 0"),
    ({"dropout": 1.5}, r"DenseNet121: dropout must be a number in \[0, 1\); got 1.5"),
])
def test_densenet_argument_errors_name_the_model(options, message):
    with pytest.raises(ComponentArgumentError, match=message):
        _build("DenseNet121", **options)


def test_densenet_weights_are_paddleclas_model_zoo_files():
    weights = densenet.WEIGHTS["DenseNet264"]
    assert weights.url == MODEL_ZOO_URL + "DenseNet264_pretrained.pdparams"
    assert weights.top1 == 0.7796 and weights.input_size == 224
    assert list(densenet.WEIGHTS) == list(densenet.VARIANTS)


# --- HarDNet -------------------------------------------------------------------------------


def test_harmonic_links_and_widths_follow_the_powers_of_two():
    assert hardnet.harmonic_links(1) == [0]
    assert hardnet.harmonic_links(6) == [5, 4]
    assert hardnet.harmonic_links(8) == [7, 6, 4, 0]
    # growth 14, times 1.7 per extra link, rounded to even: 14, 23.8 -> 24, 40.46 -> 40, 68.78 -> 68
    assert [hardnet.harmonic_width(k, 14, 1.7) for k in (1, 2, 4, 8)] == [14, 24, 40, 68]
    block = hardnet.HarmonicBlock(64, 14, 1.7, depth=8, depthwise=False)
    assert block.out_channels == 14 + 14 + 14 + 14 + 68  # layers 1, 3, 5, 7 and the last
    assert block.layers[7].conv.weight.shape == [68, 14 + 24 + 40 + 64, 3, 3]  # layers 7, 6, 4 and the input
    with paddle.no_grad():
        assert block(paddle.zeros([1, 64, 4, 4])).shape == [1, 124, 4, 4]


def test_hardnet39_ds_stages_and_lr_groups():
    model = _build("HarDNet39_ds", return_stages=True, lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert _stage_shapes(model, 64) == [[1, 96, 16, 16], [1, 320, 8, 8], [1, 640, 4, 4], [1, 1024, 2, 2]]
    # the "_ds" stem: 3x3/2 conv, 1x1 conv, depthwise 3x3/2 downsampling
    assert model.base[1].conv.weight.shape == [48, 24, 1, 1]
    assert isinstance(model.base[2], hardnet.DepthwiseBN)
    assert _lr_mults(model.base[0]) == _lr_mults(model.base[2]) == {0.1}
    assert _lr_mults(model.base[3]) == {0.2}  # the first harmonic block
    assert _lr_mults(model.base[5]) == {0.3}  # the downsampling that starts stage 1
    assert _lr_mults(model.base[-1]) == {1.0}  # the head


def test_hardnet68_keeps_max_pooling_and_two_blocks_at_stride_8():
    model = _build("HarDNet68", return_stages=True)
    assert isinstance(model.base[2], paddle.nn.MaxPool2D) and model.base[1].conv.weight.shape == [64, 32, 3, 3]
    assert _stage_shapes(model, 64) == [[1, 128, 16, 16], [1, 320, 8, 8], [1, 640, 4, 4], [1, 1024, 2, 2]]


def test_hardnet_weights_table():
    assert hardnet.WEIGHTS["HarDNet68_ds"].url == MODEL_ZOO_URL + "HarDNet68_ds_pretrained.pdparams"
    assert hardnet.WEIGHTS["HarDNet85"].top1 == 0.7744
    assert list(hardnet.WEIGHTS) == list(hardnet.VARIANTS)


# --- PeleeNet ------------------------------------------------------------------------------


def test_peleenet_stages_and_two_way_dense_layers():
    model = _build("PeleeNet", return_stages=True, lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    # 32 + 3*32, + 4*32, + 8*32, + 6*32 channels at strides 4, 8, 16, 32
    assert _stage_shapes(model, 64) == [[1, 128, 16, 16], [1, 256, 8, 8], [1, 512, 4, 4], [1, 704, 2, 2]]
    layer = model.features.denseblock1.denselayer1
    assert layer.branch1a.conv.weight.shape == [16, 32, 1, 1]  # 16 * bottleneck width 1, rounded to 4s
    assert layer.branch2c.conv.weight.shape == [16, 16, 3, 3]  # half the growth rate per branch
    # a bottleneck wider than half the input is cut to in/8 * 4 channels
    assert peleenet.TwoWayDenseLayer(40, 32, 4).branch1a.conv.weight.shape == [20, 40, 1, 1]
    assert _lr_mults(model.features.stemblock) == {0.1}
    assert _lr_mults(model.features.denseblock2) == _lr_mults(model.features.transition2) == {0.3}
    assert _lr_mults(model.classifier) == {1.0}


def test_peleenet_drop_rate():
    model = _build("PeleeNet", drop_rate=0.0)
    assert model.dropout is None and _build("PeleeNet").dropout.p == 0.05
    with pytest.raises(ComponentArgumentError, match=r"PeleeNet: drop_rate must be a number in \[0, 1\)"):
        _build("PeleeNet", drop_rate=2)
    assert peleenet.WEIGHTS["PeleeNet"].url == MODEL_ZOO_URL + "PeleeNet_pretrained.pdparams"


# --- SqueezeNet ----------------------------------------------------------------------------


@pytest.mark.parametrize("name, shapes", [
    ("SqueezeNet1_0", [[1, 256, 14, 14], [1, 512, 6, 6], [1, 512, 2, 2]]),
    ("SqueezeNet1_1", [[1, 128, 15, 15], [1, 256, 7, 7], [1, 512, 3, 3]]),
])
def test_squeezenet_stages_end_before_each_max_pooling(name, shapes):
    assert _stage_shapes(_build(name, return_stages=True), 64) == shapes


def test_squeezenet_classifier_is_a_relu_conv_and_groups_cover_the_fire_modules():
    model = _build("SqueezeNet1_1", class_num=5, lr_mult_list=[0.1, 0.2, 0.3, 0.4])
    assert model._conv9.weight.shape == [5, 512, 1, 1]
    model.eval()
    with paddle.no_grad():
        logits = model(_images(3, 35, seed=1)).numpy()
    assert logits.shape == (3, 5) and (logits >= 0).all()  # as PaddleClas's
    assert _lr_mults(model._conv) == {0.1}
    assert _lr_mults(model._conv1) == _lr_mults(model._conv2) == {0.2}
    assert _lr_mults(model._conv5) == _lr_mults(model._conv8) == {0.4}
    assert _lr_mults(model._conv9) == {1.0}
    assert squeezenet.WEIGHTS["SqueezeNet1_0"].top1 == 0.596


# --- Xception ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, shapes", [
    ("Xception41", [[1, 128, 16, 16], [1, 256, 8, 8], [1, 728, 4, 4], [1, 2048, 2, 2]]),
    ("Xception71", [[1, 256, 16, 16], [1, 728, 8, 8], [1, 728, 4, 4], [1, 2048, 2, 2]]),
])
def test_xception_stages_at_strides_4_to_32(name, shapes):
    assert _stage_shapes(_build(name, return_stages=True), 64) == shapes


def test_xception71_groups_its_five_entry_blocks_by_stride():
    model = _build("Xception71", lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    entry = model._entry_flow
    assert _lr_mults(entry._conv1) == _lr_mults(entry._conv2) == {0.1}
    assert _lr_mults(entry._conv_0) == _lr_mults(entry._conv_1) == {0.2}
    assert _lr_mults(entry._conv_2) == _lr_mults(entry._conv_3) == {0.3}
    assert _lr_mults(entry._conv_4) == _lr_mults(model._middle_flow) == {0.4}
    assert _lr_mults(model._exit_flow._conv_0) == _lr_mults(model._exit_flow._conv_2) == {0.5}
    assert _lr_mults(model._exit_flow._out) == {1.0}
    assert len(model._middle_flow) == 16


def test_xception_separable_convs_are_pointwise_first():
    block = _build("Xception41")._entry_flow._conv_0
    assert block._conv1._pointwise_conv._conv.weight.shape == [128, 64, 1, 1]
    assert block._conv1._depthwise_conv._conv.weight.shape == [128, 1, 3, 3]
    assert block._short.weight.shape == [128, 64, 1, 1] and block._short.bias is None
    weights = xception.WEIGHTS["Xception65"]
    assert weights.url == MODEL_ZOO_URL + "Xception65_pretrained.pdparams"
    assert (weights.top1, weights.input_size) == (0.81, 299)


# --- Xception deeplab ----------------------------------------------------------------------


def test_xception_deeplab_stages_names_and_tensorflow_batchnorm():
    model = _build("Xception65_deeplab", return_stages=True, lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert _stage_shapes(model, 64) == [[1, 128, 16, 16], [1, 256, 8, 8], [1, 728, 4, 4], [1, 2048, 2, 2]]
    keys = list(model.state_dict())
    assert "xception_65/entry_flow/block1._short._conv.weight" in keys
    assert "xception_65/middle_flow/block16._conv3._bn2._variance" in keys
    assert not any(key.startswith("_exit_flow_2._short") for key in keys)  # no shortcut there
    norm = model._exit_flow_2._conv3._bn2
    assert (norm._epsilon, norm._momentum) == (1e-3, 0.99)
    assert model._exit_flow_2._conv1._conv1._dilation == [2, 2]
    middle = getattr(model, "xception_65/middle_flow/block1")
    assert _lr_mults(model._conv1) == {0.1} and _lr_mults(middle) == {0.4}
    assert _lr_mults(model._exit_flow_1) == {0.5} and _lr_mults(model._fc) == {1.0}


def test_xception_deeplab_weights_table():
    weights = xception_deeplab.WEIGHTS["Xception41_deeplab"]
    assert weights.url == MODEL_ZOO_URL + "Xception41_deeplab_pretrained.pdparams"
    assert (weights.top1, weights.input_size) == (0.7955, 299)


# --- InceptionV3 ---------------------------------------------------------------------------


def test_inception_v3_stages_are_paddleclas_stage_pattern():
    model = _build("InceptionV3", return_stages=True, return_patterns=["inception_block_list[3]"])
    # modules 2, 3, 7, 8, 10; at 75x75 the 35x35 grid of 299x299 is 7x7
    assert _stage_shapes(model, 75) == [
        [1, 288, 7, 7], [1, 768, 3, 3], [1, 768, 3, 3], [1, 1280, 1, 1], [1, 2048, 1, 1]
    ]
    with paddle.no_grad():
        output = model(_images(1, 75))
    np.testing.assert_array_equal(output["inception_block_list[3]"].numpy(), output["stage1"].numpy())
    assert model.inception_block_list[0].branch_pool.exclusive is False  # padding counts in the average


def test_inception_v3_lr_groups_follow_the_stages():
    model = _build("InceptionV3", lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    blocks = model.inception_block_list
    assert _lr_mults(model.inception_stem) == {0.1}
    assert [_lr_mults(block).pop() for block in blocks] == [0.2, 0.2, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4, 0.5, 0.6, 0.6]
    assert _lr_mults(model.fc) == {1.0}
    weights = inception_v3.WEIGHTS["InceptionV3"]
    assert weights.url == MODEL_ZOO_URL + "legendary_models/InceptionV3_pretrained.pdparams"
    assert (weights.top1, weights.input_size) == (0.7914, 299)


# --- DarkNet53 -----------------------------------------------------------------------------


def test_darknet53_stages_start_with_a_strided_conv():
    model = _build("DarkNet53", return_stages=True, lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert _stage_shapes(model, 64) == [
        [1, 64, 32, 32], [1, 128, 16, 16], [1, 256, 8, 8], [1, 512, 4, 4], [1, 1024, 2, 2]
    ]
    assert _lr_mults(model._conv1) == {0.1}
    assert _lr_mults(model._conv2) == _lr_mults(model._basic_block_01) == {0.2}
    assert _lr_mults(model._downsample_2) == _lr_mults(model._basic_block_38) == {0.5}
    assert _lr_mults(model._out) == {1.0}
    assert model._basic_block_44._conv1._conv.weight.shape == [512, 1024, 1, 1]
    weights = darknet.WEIGHTS["DarkNet53"]
    assert (weights.url, weights.input_size) == (MODEL_ZOO_URL + "DarkNet53_pretrained.pdparams", 256)


# --- CSPDarkNet53 --------------------------------------------------------------------------


def test_cspdarknet53_cross_stages_split_the_expanded_channels():
    model = _build("CSPDarkNet53", return_stages=True, lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert _stage_shapes(model, 64) == [
        [1, 64, 32, 32], [1, 128, 16, 16], [1, 256, 8, 8], [1, 512, 4, 4], [1, 1024, 2, 2]
    ]
    first, second = model.stages[0], model.stages[1]
    assert first.conv_exp.conv.weight.shape == [128, 64, 1, 1]  # expanded twice, then halved
    assert first.blocks[0].conv1.conv.weight.shape == [32, 64, 1, 1]
    assert second.blocks[1].conv2.conv.weight.shape == [64, 64, 3, 3]
    assert second.conv_transition_b.conv.weight.shape == [64, 64, 1, 1]
    assert _lr_mults(model.stem) == {0.1} and _lr_mults(model.stages[4]) == {0.6}
    assert _lr_mults(model.fc) == {1.0}
    assert cspnet.WEIGHTS["CSPDarkNet53"].top1 == 0.7725


def test_cspdarknet_units_use_leaky_relu():
    unit = cspnet.ConvBNLeaky(2, 2, 1)
    unit.eval()
    with paddle.no_grad():
        unit.conv.weight.set_value(paddle.eye(2).reshape([2, 2, 1, 1]))
        out = unit(paddle.to_tensor([[[[-2.0]], [[3.0]]]])).numpy().ravel()
    np.testing.assert_allclose(out, [-0.02, 3.0], rtol=1e-4)  # BN at its initial statistics is ~identity
