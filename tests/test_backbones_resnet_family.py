"""What the ResNet family (ResNet, ResNeXt, SE-ResNet/ResNeXt, SENet, the WSL ResNeXts) does
beyond the registry-wide contract and parity tests: the PaddleClas architecture arguments its
configs pass (layer_type DiverseBranchBlock, use_first_short_conv, data_format NHWC,
input_image_channel, stem_act, max_pool), checked against PaddleClas itself, and the weights
tables."""
from __future__ import annotations

import numpy as np
import paddle
import pytest
from _backbone_cases import REGISTRY, paddleclas

from corolla.api import MODEL_ZOO_URL, ComponentArgumentError, apply_state_dict
from corolla.plugins.backbones import resnet, resnext, se_resnext


def _images(batch: int, size: int, channels: int = 3, seed: int = 0) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal((batch, channels, size, size), dtype=np.float32))


def _runnable(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """PaddleClas's DBB keeps its identity kernel in float64, which Paddle 3 no longer
    mixes with float32 inputs in a convolution: make it float32."""
    for layer in model.sublayers():
        if hasattr(layer, "id_tensor"):
            layer.id_tensor = layer.id_tensor.astype("float32")
    return model


def _theirs(name: str, **options) -> paddle.nn.Layer:
    """PaddleClas's model, with seeded weights: in training mode BatchNorm over a small batch
    amplifies rounding, for some random weights past the tolerance (2.1e-4 in one suite run;
    7e-6 to 6e-5 for eight seeds)."""
    backbones = vars(paddleclas().arch.backbone)
    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        return _runnable(backbones[name](**options))


def _randomise_batchnorms(model: paddle.nn.Layer) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters, so that a branch
    or padding value computed wrongly changes the output."""
    rng = np.random.default_rng(7)
    for key, tensor in model.state_dict().items():
        if key.endswith(("_mean", "_variance")) or (key.endswith((".weight", ".bias")) and len(tensor.shape) == 1):
            values = rng.normal(0.0, 0.2, tensor.shape).astype(np.float32)
            tensor.set_value(np.abs(values) + 0.5 if key.endswith("_variance") else values)


def _assert_same_outputs(
    name: str, theirs: paddle.nn.Layer, ours: paddle.nn.Layer, images: paddle.Tensor, *, train: bool = False
) -> None:
    """Same parameter names and shapes; with PaddleClas's values loaded, the same outputs
    (in inference, and in training where ``train``)."""
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    _randomise_batchnorms(theirs)
    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    apply_state_dict(ours, state, name=name, source="PaddleClas", strict=True)
    for mode in ("eval", "train") if train else ("eval",):
        theirs.train() if mode == "train" else theirs.eval()
        ours.train() if mode == "train" else ours.eval()
        with paddle.no_grad():
            expected, got = theirs(images).numpy(), ours(images).numpy()
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got / scale, expected / scale, rtol=0, atol=1e-4, err_msg=mode)


# --- ResNet's DiverseBranchBlock ------------------------------------------------------------


def test_resnet18_dbb_matches_paddleclas_in_eval_and_training():
    # PaddleClas's ImageNet/ResNet/ResNet18_dbb.yaml
    options = {"layer_type": "DiverseBranchBlock", "use_first_short_conv": False}
    with paddle.LazyGuard():  # every weight comes from theirs
        ours = REGISTRY.build("backbone", "ResNet18", options)
    assert ours.blocks[0].short is None and ours.blocks[2].short is not None
    _assert_same_outputs("ResNet18", _theirs("ResNet18", **options), ours, _images(2, 48), train=True)


def test_dbb_bottleneck_matches_paddleclas():
    # 1x1 convolutions as DBBs: no border padding, a 1x1 "average pool"
    legendary = paddleclas().arch.backbone.legendary_models.resnet
    theirs = _runnable(
        legendary.BottleneckBlock(
            num_channels=32, num_filters=16, stride=2, shortcut=False, if_first=False, layer=legendary.DiverseBranchBlock
        )
    )
    ours = resnet.BottleneckBlock(
        32, 16, stride=2, unit=resnet.DiverseBranchBlock, project=True, avg_down=True, data_format="NCHW"
    )
    _assert_same_outputs("BottleneckBlock", theirs, ours, _images(2, 9, channels=32), train=True)


def test_dbb_starts_as_the_sum_of_its_branches_with_an_identity_1x1():
    block = resnet.DiverseBranchBlock(4, 6, 3, stride=2, act="relu")
    block.eval()
    images = _images(1, 9, channels=4)
    with paddle.no_grad():
        np.testing.assert_array_equal(block.dbb_1x1_kxk.idconv1(images).numpy(), images.numpy())
        branches = sum(getattr(block, name)(images) for name in ("dbb_origin", "dbb_1x1", "dbb_avg", "dbb_1x1_kxk"))
        np.testing.assert_allclose(block(images).numpy(), np.maximum(branches.numpy(), 0), rtol=1e-6, atol=1e-6)
    assert block(images).shape == [1, 6, 5, 5]
    # the identity is no parameter: it is not saved, and two blocks share nothing
    assert not any("identity" in key for key in block.state_dict())


def test_re_parameterized_dbb_resnet_gives_the_same_logits_with_one_conv_per_unit():
    model = REGISTRY.build("backbone", "ResNet18", {"layer_type": "DiverseBranchBlock", "class_num": 10})
    _randomise_batchnorms(model)
    for key, param in model.named_parameters():
        if "idconv1" in key:  # a learnt residual on the identity
            param.set_value(np.random.default_rng(3).normal(0, 0.1, param.shape).astype(np.float32))
    model.eval()
    images = _images(2, 40)
    with paddle.no_grad():
        before = model(images).numpy()
        model.re_parameterize()
        after = model(images).numpy()
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * np.abs(before).max())
    keys = [key for key in model.state_dict() if key.startswith("blocks.0.conv0.")]
    assert keys == ["blocks.0.conv0.dbb_reparam.weight", "blocks.0.conv0.dbb_reparam.bias"]
    assert model.state_dict()["blocks.0.conv0.dbb_reparam.weight"].shape == [64, 64, 3, 3]


def test_bordered_batchnorm_pads_with_what_the_batchnorm_makes_of_zero():
    layer = resnet.BorderedBatchNorm(3, pad=2)
    _randomise_batchnorms(layer)
    layer.eval()
    images = _images(1, 4)
    with paddle.no_grad():
        out = layer(images).numpy()
        zero = layer.bn(paddle.zeros([1, 3, 1, 1])).numpy()[0, :, 0, 0]
        inner = layer.bn(images).numpy()
    assert out.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(out[:, :, 2:-2, 2:-2], inner, rtol=1e-6, atol=1e-6)
    for channel in range(3):
        border = np.ones((8, 8), bool)
        border[2:-2, 2:-2] = False
        np.testing.assert_allclose(out[0, channel][border], zero[channel], rtol=1e-5, atol=1e-6)


# --- the other PaddleClas arguments ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, options",
    [
        # PaddleClas's *_amp_O2_ultra configs: 4-channel input, channels-last layers
        ("ResNet18", {"input_image_channel": 4, "data_format": "NHWC"}),
        ("ResNet18_vd", {"stride_list": [2, 2, 2, 2, 1], "data_format": "NHWC"}),
        # the PULC text-line teacher (ResNet101_vd there) keeps the width after the stem
        ("ResNet18_vd", {"stride_list": [2, [2, 1], [2, 1], [2, 1], [2, 1]]}),
        ("SE_ResNeXt50_32x4d", {"input_image_channel": 4, "data_format": "NHWC"}),
        # the reid and metric-learning configs' stem without ReLU; no max-pool
        ("ResNet18", {"stem_act": None, "max_pool": False}),
    ],
)
def test_paddleclas_config_arguments_give_paddleclas_outputs(name, options):
    images = _images(2, 64, channels=options.get("input_image_channel", 3))
    theirs = _theirs(name, **options)
    with paddle.LazyGuard():  # every weight comes from theirs
        ours = REGISTRY.build("backbone", name, options)
    _assert_same_outputs(name, theirs, ours, images)


def test_nhwc_gives_the_nchw_logits_and_channels_last_stages():
    nchw = REGISTRY.build("backbone", "ResNeXt50_32x4d", {"return_stages": [0]})
    with paddle.LazyGuard():  # every weight comes from nchw
        nhwc = REGISTRY.build("backbone", "ResNeXt50_32x4d", {"data_format": "NHWC", "return_stages": [0]})
    state = {k: v.numpy() for k, v in nchw.state_dict().items()}
    apply_state_dict(nhwc, state, name="ResNeXt50_32x4d", source="NCHW", strict=True)
    nchw.eval()
    nhwc.eval()
    with paddle.no_grad():
        first, second = nchw(_images(1, 64)), nhwc(_images(1, 64))
    np.testing.assert_allclose(second["logits"].numpy(), first["logits"].numpy(), rtol=1e-4, atol=1e-5)
    assert first["stage0"].shape == [1, 256, 16, 16] and second["stage0"].shape == [1, 16, 16, 256]


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("ResNet50", {"use_first_short_conv": False}, "use_first_short_conv=False needs a first block that keeps the shape"),
        ("ResNet18", {"use_first_short_conv": False, "max_pool": False}, "use_first_short_conv=False needs"),
        ("ResNet18", {"layer_type": "DiverseBranchBlock", "data_format": "NHWC"}, "DiverseBranchBlock layers need NCHW"),
        ("ResNet18", {"layer_type": "RepBlock"}, "layer_type must be one of ConvBNLayer, DiverseBranchBlock; got 'Rep"),
        ("ResNet18", {"data_format": "NCWH"}, "data_format must be one of NCHW, NHWC"),
        ("ResNet18", {"stem_act": "gelu"}, "stem_act must be one of None, relu"),
        ("ResNet18", {"input_image_channel": 0}, "input_image_channel must be a positive int"),
        ("ResNet18", {"stride_list": [2, 2, 2, [2, 1, 1], 2]}, "stride_list needs 5 positive strides, each an int or"),
        ("SE_ResNet18_vd", {"data_format": "nhwc"}, "data_format must be one of NCHW, NHWC"),
    ],
)
def test_bad_arguments_are_errors_naming_the_model(name, options, message):
    with pytest.raises(ComponentArgumentError, match=f"{name}: {message}"):
        REGISTRY.build("backbone", name, options)


def test_se_resnet_vd_has_basic_blocks_with_squeeze_excitation():
    model = REGISTRY.build("backbone", "SE_ResNet18_vd", {"return_stages": True})
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert shapes["bb_0_0.conv0._conv.weight"] == (64, 64, 3, 3) and "bb_0_0.conv2._conv.weight" not in shapes
    assert shapes["bb_3_1.scale.squeeze.weight"] == (512, 32)  # reduction 16
    assert shapes["out.weight"] == (512, 1000)
    model.eval()
    with paddle.no_grad():
        output = model(_images(1, 64))
    assert [output[f"stage{i}"].shape for i in range(4)] == [[1, 64, 16, 16], [1, 128, 8, 8], [1, 256, 4, 4], [1, 512, 2, 2]]


# --- weights --------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [resnet, resnext, se_resnext])
def test_every_name_has_its_published_weights(module):
    names = set(module.VARIANTS)
    assert names <= set(module.WEIGHTS)
    assert {key.removesuffix("_ssld") for key in module.WEIGHTS} == names
    for key, weights in module.WEIGHTS.items():
        assert weights.url.startswith(MODEL_ZOO_URL) and weights.url.endswith("_pretrained.pdparams"), key
        assert weights.top1 is None or 0.7 < weights.top1 < 0.86, key
    # PaddleClas 2.6's file names, including one that drops a "d"
    assert resnext.WEIGHTS["ResNeXt101_32x16d_wsl"].url == MODEL_ZOO_URL + "ResNeXt101_32x16_wsl_pretrained.pdparams"
    assert resnet.WEIGHTS["ResNet50_vc"].url == MODEL_ZOO_URL + "ResNet50_vc_pretrained.pdparams"
    assert resnet.WEIGHTS["ResNet50_vd_ssld"].url == MODEL_ZOO_URL + "legendary_models/ResNet50_vd_ssld_pretrained.pdparams"
