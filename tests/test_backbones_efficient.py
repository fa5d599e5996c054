"""What the "efficient" families (EfficientNet, TinyNet, EfficientNetV2, MixNet, ReXNet,
RegNet, RepVGG) do beyond the registry-wide contract and parity tests: padding, drop-connect,
family options and their checks, stage layout, and their weights tables."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from corolla import load_registry
from corolla.api import MODEL_ZOO_URL
from corolla.plugin.errors import ComponentArgumentError
from corolla.plugins.backbones import _efficientnet, efficientnet, efficientnet_v2, mixnet, regnet, repvgg, rexnet, tinynet

REGISTRY = load_registry()


def _build(name: str, **params) -> paddle.nn.Layer:
    return REGISTRY.build("backbone", name, params)


def _images(batch: int, size: int, seed: int = 0) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal((batch, 3, size, size), dtype=np.float32))


def _stage_shapes(name: str, size: int = 64, **params) -> list[list[int]]:
    model = _build(name, return_stages=True, **params)
    model.eval()
    with paddle.no_grad():
        output = model(_images(1, size))
    return [output[f"stage{i}"].shape for i in range(len(output) - 1)]


def _check_weights(module, sizes: dict[str, int]) -> None:
    names = set(module.VARIANTS)
    assert {key.removesuffix("_ssld") for key in module.WEIGHTS} == names
    for key, weights in module.WEIGHTS.items():
        assert weights.url == f"{MODEL_ZOO_URL}{key}_pretrained.pdparams"
        assert weights.input_size == sizes.get(key, 224), key
        assert weights.top1 is None or 0.55 < weights.top1 < 0.85


# --- EfficientNet -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, kernel, stride, padding",
    [
        # TensorFlow pads 0 before, 1 after; PaddleClas 2 on each side, then crops a row and column
        (224, 3, 2, (2, True)),
        (112, 5, 2, (3, True)),
        (65, 5, 2, (2, False)),  # odd size: even padding
        (33, 3, 2, (1, False)),
        (112, 3, 1, (1, False)),
        (7, 1, 1, (0, False)),
    ],
)
def test_same_padding_is_tensorflows_for_the_nominal_size(size, kernel, stride, padding):
    assert _efficientnet.same_padding(size, kernel, stride) == padding


@pytest.mark.parametrize("size", [224, 20, 17])
def test_same_padded_conv_pads_as_tensorflow_before_and_a_stride_more_after(size):
    conv = _efficientnet.PaddedConv(2, 3, 3, padding_type="SAME", size=224, stride=2)
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((1, 2, size, size), dtype=np.float32))
    weight = conv._conv.weight
    asymmetric = paddle.nn.functional.conv2d(x, weight, stride=2, padding=[0, 2, 0, 2])
    np.testing.assert_allclose(conv(x).numpy(), asymmetric.numpy(), rtol=1e-5, atol=1e-6)
    if size % 2 == 0:  # TensorFlow: 0 before, 1 after
        tf_same = paddle.nn.functional.conv2d(paddle.nn.functional.pad(x, [0, 1, 0, 1]), weight, stride=2)
        np.testing.assert_allclose(conv(x).numpy(), tf_same.numpy(), rtol=1e-5, atol=1e-6)


def test_drop_connect_drops_whole_samples_in_training_only():
    paddle.seed(3)
    x = paddle.ones([400, 2, 3, 3])
    out = _efficientnet.drop_connect(x, 0.25, training=True).numpy()
    per_sample = out.reshape(400, -1)
    assert set(np.unique(per_sample)) <= {0.0, np.float32(1 / 0.75)}
    assert (per_sample == per_sample[:, :1]).all()  # a sample is kept or dropped whole
    assert 0.15 < (per_sample[:, 0] == 0).mean() < 0.35
    assert _efficientnet.drop_connect(x, 0.25, training=False) is x


def test_efficientnet_drop_connect_rates_rise_over_the_blocks_and_act_in_training():
    model = _build("EfficientNetB0_small", override_params={"drop_connect_rate": 0.5, "dropout_rate": 0.0})
    blocks = model._ef.blocks
    assert len(blocks) == 16 and model._drop is None
    np.testing.assert_allclose([b.drop_rate for b in blocks], [0.5 * i / 16 for i in range(16)])
    images = _images(4, 32)
    model.train()
    paddle.seed(0)
    first = model(images).numpy()
    second = model(images).numpy()
    assert not np.allclose(first, second)  # some residual branches were dropped
    model.eval()
    with paddle.no_grad():
        np.testing.assert_array_equal(model(images).numpy(), model(images).numpy())


def test_efficientnet_stages_are_the_last_blocks_at_each_stride():
    assert _stage_shapes("EfficientNetB0_small") == [
        [1, 16, 32, 32], [1, 24, 16, 16], [1, 40, 8, 8], [1, 112, 4, 4], [1, 320, 2, 2]
    ]


def test_efficientnet_names_blocks_as_paddleclas():
    keys = list(_build("EfficientNetB0").state_dict())
    assert keys[0] == "_ef._conv_stem._conv._conv._conv.weight"
    assert "_ef._blocks.1.._ecn._conv._conv._conv.weight" in keys  # a group's first block
    assert "_ef.block.2.._se._conv1._conv.bias" in keys  # a repeat
    assert keys[-2:] == ["_fc.weight", "_fc.bias"]


def test_efficientnet_options():
    assert _build("EfficientNetB0", num_features=640, class_num=3)._fc.weight.shape == [640, 3]
    plain = _build("EfficientNetB0", use_se=False)
    assert not any(isinstance(layer, _efficientnet.SqueezeExcite) for layer in plain.sublayers())
    # width 1.2 (B3) widens the stem to 40 channels, unless it is fixed at 32
    stem = {fixed: _build("EfficientNetB3", fix_stem=fixed)._ef._conv_stem._conv._conv for fixed in (False, True)}
    assert (stem[False]._conv.weight.shape[0], stem[True]._conv.weight.shape[0]) == (40, 32)
    norm = _build("EfficientNetB0_small", override_params={"batch_norm_momentum": 0.9, "batch_norm_epsilon": 1e-5})._conv._bn
    assert (norm._momentum, norm._epsilon) == (0.9, 1e-5)
    dynamic = _build("EfficientNetB0", padding_type="DYNAMIC")._ef._conv_stem._conv._conv
    assert dynamic._conv._padding == 1 and not dynamic.crop
    assert stem[False]._conv._padding == 2 and stem[False].crop


@pytest.mark.parametrize(
    "params, message",
    [
        ({"padding_type": "VALID"}, r"EfficientNetB0: padding_type must be one of SAME, DYNAMIC; got 'VALID'"),
        (
            {"override_params": {"depth_truncate": "round"}},
            r"EfficientNetB0: override_params takes a mapping of .*depth_trunc.*; got \['depth_truncate'\]",
        ),
        ({"override_params": {"depth_trunc": "floor"}}, r"depth_trunc must be 'ceil' or 'round'; got 'floor'"),
        ({"override_params": {"batch_norm_epsilon": "small"}}, r"batch_norm_epsilon must be a non-negative number"),
    ],
)
def test_efficientnet_argument_errors(params, message):
    with pytest.raises(ComponentArgumentError, match=message):
        _build("EfficientNetB0", **params)


def test_efficientnet_weights_table():
    _check_weights(
        efficientnet,
        {"EfficientNetB1": 240, "EfficientNetB2": 260, "EfficientNetB3": 300, "EfficientNetB4": 380,
         "EfficientNetB5": 456, "EfficientNetB6": 528, "EfficientNetB7": 600},
    )
    assert efficientnet.WEIGHTS["EfficientNetB0"].top1 == 0.7738


# --- TinyNet -----------------------------------------------------------------------------------


def test_tinynet_stages_are_the_last_blocks_at_each_stride():
    assert _stage_shapes("TinyNet_E") == [[1, 8, 32, 32], [1, 16, 16, 16], [1, 24, 8, 8], [1, 56, 4, 4], [1, 160, 2, 2]]


def test_tinynet_config_overrides_round_the_depth_as_the_published_weights_do():
    # PaddleClas's TinyNet configs: depth_trunc round gives 19 blocks at depth 1.2, ceil 23
    assert len(_build("TinyNet_A")._ef.blocks) == 23
    config = {"batch_norm_momentum": 0.9, "batch_norm_epsilon": 1e-5, "depth_trunc": "round", "drop_connect_rate": 0.1}
    model = _build("TinyNet_A", override_params=config)
    assert len(model._ef.blocks) == 19
    assert model._ef._conv_stem._conv._conv._conv.weight.shape[0] == 32 and model._fc.weight.shape[0] == 1280


def test_tinynet_initialises_convolutions_by_fan_in():
    model = _build("TinyNet_E")
    weight = model._conv._conv._conv.weight  # 1x1, 160 input channels
    assert abs(weight.numpy().std() - (2 / 160) ** 0.5) < 0.01
    assert not model._fc.bias.numpy().any()
    assert np.abs(model._fc.weight.numpy()).max() <= 1 / 1280**0.5


def test_tinynet_weights_table():
    _check_weights(tinynet, {"TinyNet_A": 192, "TinyNet_B": 188, "TinyNet_C": 184, "TinyNet_D": 152, "TinyNet_E": 106})


# --- EfficientNetV2 ----------------------------------------------------------------------------


def test_efficientnet_v2_layout_drop_rates_and_decay():
    model = _build("EfficientNetV2_S", return_stages=True, class_num=5)
    blocks = list(model._blocks)
    assert len(blocks) == 40
    assert [type(b).__name__ for b in blocks].count("FusedMBConvBlock") == 10
    np.testing.assert_allclose([b.drop_rate for b in blocks], [0.2 * i / 40 for i in range(40)])
    model.eval()
    with paddle.no_grad():
        output = model(_images(1, 64))
    assert [output[f"stage{i}"].shape for i in range(5)] == [
        [1, 24, 32, 32], [1, 48, 16, 16], [1, 64, 8, 8], [1, 160, 4, 4], [1, 256, 2, 2]
    ]
    assert output["logits"].shape == [1, 5]
    # BatchNorm and the classifier's bias are exempt from weight decay, as in PaddleClas
    assert model._blocks[0]._norm1.weight.regularizer is not None and model._fc.bias.regularizer is not None
    assert model._fc.weight.regularizer is None and model._stem._conv_stem._conv.weight.regularizer is None
    # convolutions start normal with std sqrt(2 / fan-out): the head's 1x1 conv has 1280 outputs
    assert abs(model._head._conv_head.weight.numpy().std() - (2 / 1280) ** 0.5) < 0.003
    with pytest.raises(ComponentArgumentError, match=r"EfficientNetV2_S: padding_type must be one of SAME, DYNAMIC"):
        _build("EfficientNetV2_S", padding_type="VALID")


def test_efficientnet_v2_weights_table():
    _check_weights(efficientnet_v2, {"EfficientNetV2_S": 384})


# --- MixNet ------------------------------------------------------------------------------------


def test_mixnet_stages_split_the_last_stage_where_it_halves_the_map():
    # global pooling lets MixNet run below PaddleClas's 224x224
    assert _stage_shapes("MixNet_S") == [[1, 16, 32, 32], [1, 24, 16, 16], [1, 40, 8, 8], [1, 120, 4, 4], [1, 200, 2, 2]]
    model = _build("MixNet_S", lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    groups = {
        "features.init_block.conv1.": 0.1, "features.init_block.conv2.": 0.2, "features.stage1.": 0.3,
        "features.stage2.": 0.4, "features.stage3.": 0.5, "features.stage4.unit3.": 0.5, "features.stage4.unit4.": 0.6,
        "features.final_block.": 1.0, "output.": 1.0,
    }
    params = {key: p for key, p in model.named_parameters() if not p.stop_gradient}
    for prefix, mult in groups.items():
        assert {round(p.optimize_attr["learning_rate"], 2) for k, p in params.items() if k.startswith(prefix)} == {mult}


def test_mixnet_mixes_kernel_sizes_over_channel_groups():
    assert mixnet.split_channels(10, 3) == [4, 3, 3]
    model = _build("MixNet_S")
    mixed = model.features.stage4.unit4.conv1.conv  # five kernel sizes over 720 depthwise channels
    assert [list(conv.weight.shape) for conv in mixed] == [[144, 1, k, k] for k in (3, 5, 7, 9, 11)]
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal((1, 720, 5, 5), dtype=np.float32))
    expected = paddle.concat(
        [conv(part) for conv, part in zip(mixed, paddle.split(x, 5, axis=1))], axis=1
    )
    np.testing.assert_array_equal(mixed(x).numpy(), expected.numpy())
    assert model.features.stage4.unit4.conv1.conv[4]._padding == 5  # every kernel keeps the size


def test_mixnet_weights_table():
    _check_weights(mixnet, {})
    assert mixnet.WEIGHTS["MixNet_L"].top1 == 0.7860


# --- ReXNet ------------------------------------------------------------------------------------


def test_rexnet_widens_step_by_step_rounding_half_to_even():
    # outputs 16 + 11.25 per block: 38.5 -> 38 and 128.5 -> 128, as PaddleClas's round()
    assert _stage_shapes("ReXNet_1_0") == [[1, 16, 32, 32], [1, 38, 16, 16], [1, 61, 8, 8], [1, 128, 4, 4], [1, 185, 2, 2]]
    assert rexnet.block_channels(1.3, 1.0, 16, 180)[:3] == [(42, 21), (21, 35), (35, 50)]


def test_rexnet_shortcut_adds_the_input_to_the_first_channels():
    block = rexnet.LinearBottleneck(4, 6, expand_ratio=1, stride=1, se_reduction=0)
    block.eval()
    x = paddle.to_tensor(np.random.default_rng(4).standard_normal((1, 4, 5, 5), dtype=np.float32))
    with paddle.no_grad():
        branch = block.out(x).numpy()
        out = block(x).numpy()
    np.testing.assert_allclose(out[:, :4], branch[:, :4] + x.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(out[:, 4:], branch[:, 4:])
    assert not rexnet.LinearBottleneck(4, 6, expand_ratio=1, stride=2, se_reduction=0).shortcut


def test_rexnet_options():
    deep = _build("ReXNet_1_0", depth_mult=1.5, use_se=False, class_num=3)
    blocks = [layer for layer in deep.features if isinstance(layer, rexnet.LinearBottleneck)]
    assert len(blocks) == 2 + 3 + 3 + 5 + 5 + 8  # ceil(1.5 * n) per group
    assert not any(isinstance(layer, rexnet.SqueezeExcite) for layer in deep.sublayers())
    assert deep.output[1].weight.shape == [3, 1280, 1, 1]
    assert _build("ReXNet_1_0", se_ratio=6).features[6].out[5].fc[0].weight.shape == [38, 228, 1, 1]
    with pytest.raises(ComponentArgumentError, match=r"ReXNet_1_0: depth_mult must be positive"):
        _build("ReXNet_1_0", depth_mult=0)


def test_rexnet_weights_table():
    _check_weights(rexnet, {})
    assert rexnet.WEIGHTS["ReXNet_3_0"].top1 == 0.8209


# --- RegNet ------------------------------------------------------------------------------------


def test_regnet_stage_widths_follow_the_quantised_linear_rule():
    assert regnet.stage_widths(36.44, 24, 2.49, 13, 8) == [(1, 24, 8), (1, 56, 8), (4, 152, 8), (7, 368, 8)]
    # 8GF: a first stage narrower than the group width becomes one group
    assert regnet.stage_widths(49.56, 80, 2.88, 23, 120) == [(2, 80, 80), (5, 240, 120), (15, 720, 120), (1, 1920, 120)]


def test_regnet_stages_names_and_classifier():
    assert _stage_shapes("RegNetX_200MF") == [[1, 24, 16, 16], [1, 56, 8, 8], [1, 152, 4, 4], [1, 368, 2, 2]]
    model = _build("RegNetX_200MF", class_num=4)
    keys = set(model.state_dict())
    assert {"s1_b1.short._conv.weight", "s3_b4.conv1._batch_norm._variance", "out.weight"} <= keys
    assert "s3_b2.short._conv.weight" not in keys  # only a stage's first block projects
    assert model.s3_b2.conv1._conv._groups == 152 // 8
    assert np.abs(model.out.weight.numpy()).max() <= 1 / 368**0.5


def test_regnet_weights_table():
    _check_weights(regnet, {name: 256 for name in regnet.VARIANTS if name != "RegNetX_4GF"})
    assert regnet.WEIGHTS["RegNetX_4GF"].top1 == 0.785


# --- RepVGG ------------------------------------------------------------------------------------


def _small_repvgg(**options) -> repvgg.RepVGG:
    # blocks 2 and 4 are grouped and keep their shape, so they have all three branches
    model = repvgg.RepVGG(name="RepVGG_small", num_blocks=(2, 2, 1, 1), width_multiplier=(0.25, 0.25, 0.25, 0.25), **options)
    norms = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.BatchNorm2D)]
    rng = np.random.default_rng(5)
    for norm in norms:  # statistics and affine parameters far from the defaults
        for tensor, low, high in ((norm._mean, -1, 1), (norm._variance, 0.5, 2), (norm.weight, 0.5, 1.5), (norm.bias, -1, 1)):
            tensor.set_value(rng.uniform(low, high, tensor.shape).astype("float32"))
    return model


@pytest.mark.parametrize("options", [dict(groups=1), dict(groups=2, use_se=True)])
def test_repvgg_re_parameterised_blocks_compute_the_same(options):
    model = _small_repvgg(**options)
    model.eval()
    images = _images(2, 32, seed=6)
    with paddle.no_grad():
        expected = model(images).numpy()
        assert model.inference_model() is model
        got = model(images).numpy()
    blocks = [layer for layer in model.sublayers() if isinstance(layer, repvgg.RepVGGBlock)]
    assert all(block.is_repped for block in blocks)
    assert blocks[2].rbr_identity is not None and blocks[2].rbr_reparam._groups == options["groups"]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    # the folded weights follow the current ones when done again
    model.stage0.rbr_dense.bn.bias.set_value(model.stage0.rbr_dense.bn.bias + 1.0)
    before = model.stage0.rbr_reparam.bias.numpy()
    model.re_parameterize()
    np.testing.assert_allclose(model.stage0.rbr_reparam.bias.numpy(), before + 1.0, rtol=1e-5)


def test_repvgg_exports_the_re_parameterised_net(tmp_path):
    from corolla.engine.builders import inference_model

    model = _small_repvgg(groups=2, use_se=True)
    model.eval()
    images = _images(1, 32, seed=7)
    with paddle.no_grad():
        expected = model(images).numpy()
    net = inference_model(model)
    static = paddle.jit.to_static(net, input_spec=[paddle.static.InputSpec([None, 3, 32, 32], "float32")], full_graph=True)
    paddle.jit.save(static, str(tmp_path / "inference"))
    loaded = paddle.jit.load(str(tmp_path / "inference"))
    loaded.eval()
    np.testing.assert_allclose(loaded(images).numpy(), expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    # per block the folded conv's weight and bias and the SE's four parameters; the classifier's two
    assert len(loaded.parameters()) == 7 * (2 + 4) + 2


def test_repvgg_groups_every_other_block_and_stages():
    model = _small_repvgg(groups=4, use_se=True)
    assert [block.rbr_dense.conv._groups for stage in model.stage_list[1:] for block in stage] == [1, 4, 1, 4, 1, 4]
    assert model.stage4[0].se.down.weight.shape == [8, 128, 1, 1]  # 16 times fewer channels
    assert sorted(repvgg.GROUPWISE_BLOCKS) == list(range(2, 27, 2))
    assert _stage_shapes("RepVGG_A0") == [[1, 48, 32, 32], [1, 48, 16, 16], [1, 96, 8, 8], [1, 192, 4, 4], [1, 1280, 2, 2]]


def test_repvgg_weights_table():
    _check_weights(repvgg, {"RepVGG_D2se": 320})
    assert repvgg.WEIGHTS["RepVGG_D2se"].top1 == 0.8339
