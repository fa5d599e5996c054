"""What the mobile families (MobileNetV1/V2/V3, PP-LCNet, ShuffleNetV2) do beyond the
registry-wide contract and parity tests: widths per scale, stage layout, family options,
the per-parameter training details PaddleClas sets, and their weights tables."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from corolla import load_registry
from corolla.api import MODEL_ZOO_URL, ComponentArgumentError
from corolla.plugins.backbones import _layers, mobilenet_v1, mobilenet_v2, mobilenet_v3, pplcnet, shufflenet_v2

REGISTRY = load_registry()


def _build(name: str, **params) -> paddle.nn.Layer:
    return REGISTRY.build("backbone", name, params)


def _images(batch: int, size: int) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32))


def _stage_shapes(name: str, size: int = 64, **params) -> list[list[int]]:
    model = _build(name, return_stages=True, **params)
    model.eval()
    with paddle.no_grad():
        output = model(_images(1, size))
    return [output[f"stage{i}"].shape for i in range(len(output) - 1)]


@pytest.mark.parametrize(
    "value, rounded",
    [(5.6, 8), (8.4, 8), (16.8, 16), (33.6, 32), (201.6, 200), (1200, 1200), (10, 16), (90, 88), (28, 32)],
)
def test_make_divisible_rounds_to_eights_like_paddleclas(value, rounded):
    assert _layers.make_divisible(value) == rounded


# Channels follow PaddleClas's tables at each name's scale: int(c * scale) for
# MobileNetV1/V2, make_divisible(c * scale) for MobileNetV3 and PP-LCNet, a lookup
# table for ShuffleNetV2. Each stage ends where the feature map halves next.
@pytest.mark.parametrize(
    "name, shapes",
    [
        ("MobileNetV1_x0_25", [[1, 16, 32, 32], [1, 32, 16, 16], [1, 64, 8, 8], [1, 128, 4, 4], [1, 256, 2, 2]]),
        ("MobileNetV2_x0_25", [[1, 4, 32, 32], [1, 6, 16, 16], [1, 8, 8, 8], [1, 24, 4, 4], [1, 80, 2, 2]]),
        ("MobileNetV3_small_x0_35", [[1, 8, 16, 16], [1, 8, 8, 8], [1, 16, 4, 4], [1, 32, 2, 2]]),
        ("MobileNetV3_large_x0_35", [[1, 8, 32, 32], [1, 8, 16, 16], [1, 16, 8, 8], [1, 40, 4, 4], [1, 56, 2, 2]]),
        ("PPLCNet_x0_25", [[1, 8, 32, 32], [1, 16, 16, 16], [1, 32, 8, 8], [1, 64, 4, 4], [1, 128, 2, 2]]),
        ("ShuffleNetV2_x0_33", [[1, 32, 8, 8], [1, 64, 4, 4], [1, 128, 2, 2]]),
        ("ShuffleNetV2_x2_0", [[1, 244, 8, 8], [1, 488, 4, 4], [1, 976, 2, 2]]),
    ],
)
def test_stage_outputs_have_paddleclas_widths_and_halve_in_size(name, shapes):
    assert _stage_shapes(name) == shapes


@pytest.mark.parametrize(
    "name, layer, out_channels",
    [
        ("MobileNetV2_x0_5", "conv9", 1280),  # the last conv widens only above scale 1.0
        ("MobileNetV2_x1_5", "conv9", 1920),
        ("MobileNetV3_small_x0_35", "last_second_conv", 200),
        ("MobileNetV3_large_x1_25", "last_second_conv", 1200),
        ("ShuffleNetV2_x0_25", "_last_conv", 512),
        ("ShuffleNetV2_x2_0", "_last_conv", 2048),
    ],
)
def test_head_width_follows_the_scale(name, layer, out_channels):
    key = f"{layer}.conv.weight" if name.startswith("MobileNetV3") else f"{layer}._conv.weight"
    assert _build(name).state_dict()[key].shape[0] == out_channels


def test_pplcnet_options():
    # the last stage no longer halves the map; the 1x1 head conv can go, the classifier then reads 128 channels
    assert _stage_shapes("PPLCNet_x0_25", stride_list=[2, 2, 2, 2, 1])[4] == [1, 128, 4, 4]
    # PaddleClas's PULC text-line configs halve only the height after the stem
    model = _build("PPLCNet_x0_25", stride_list=[2, [2, 1], [2, 1], [2, 1], [2, 1]], return_stages=[4])
    model.eval()
    with paddle.no_grad():
        assert model(paddle.zeros([1, 3, 80, 160]))["stage4"].shape == [1, 128, 3, 80]
    plain = _build("PPLCNet_x0_25", use_last_conv=False, class_num=3)
    assert plain.last_conv is None and plain.fc.weight.shape == [128, 3]
    assert _build("PPLCNet_x0_25", class_expand=64).fc.weight.shape == [64, 1000]
    relu = _build("PPLCNet_x0_25", act="relu")
    assert all(not isinstance(layer, paddle.nn.Hardswish) for layer in relu.sublayers())
    with pytest.raises(ComponentArgumentError, match=r"PPLCNet_x0_25: stride_list needs 5 positive strides"):
        _build("PPLCNet_x0_25", stride_list=[2, 2, 2])
    with pytest.raises(
        ComponentArgumentError, match=r"PPLCNet_x0_25: act must be one of hardswish, relu, relu6; got 'gelu'"
    ):
        _build("PPLCNet_x0_25", act="gelu")


def test_dropout_scales_in_eval_like_paddleclas():
    # PaddleClas's "downscale_in_infer": training keeps activations, inference multiplies by 1 - p
    kept = _build("MobileNetV3_small_x0_35", dropout_prob=None)
    halved = _build("MobileNetV3_small_x0_35", dropout_prob=0.5)
    halved.set_state_dict(kept.state_dict())
    kept.eval()
    halved.eval()
    images = _images(2, 32)
    with paddle.no_grad():
        bias = kept.fc.bias.numpy()
        np.testing.assert_allclose(
            halved(images).numpy() - bias, 0.5 * (kept(images).numpy() - bias), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize(
    "name, groups",
    [
        # stem, then the blocks of each stage (their first and last index), then the head at 1.0
        (
            "MobileNetV3_large_x0_35",
            {
                "conv.": 0,
                "blocks.0.": 1,
                "blocks.1.": 2,
                "blocks.2.": 2,
                "blocks.3.": 3,
                "blocks.11.": 4,
                "blocks.12.": 5,
                "blocks.14.": 5,
                "last_second_conv": None,
            },
        ),
        (
            "MobileNetV1_x0_25",
            {"conv.": 0, "blocks.0.": 1, "blocks.5.": 4, "blocks.10.": 4, "blocks.11.": 5, "fc": None},
        ),
        (
            "MobileNetV2_x0_25",
            {"conv1.": 0, "conv2.": 1, "conv4.": 3, "conv5.": 4, "conv6.": 4, "conv8.": 5, "conv9": None},
        ),
        ("ShuffleNetV2_x0_25", {"_conv1.": 0, "2_1.": 1, "2_4.": 1, "3_1.": 2, "4_4.": 3, "_last_conv": None}),
    ],
)
def test_lr_mult_list_groups_are_the_stem_and_the_stages(name, groups):
    count = len(_build(name).lr_mult_list)
    multipliers = [round(0.1 * (i + 1), 2) for i in range(count)]
    model = _build(name, lr_mult_list=multipliers)
    params = {key: p for key, p in model.named_parameters() if not p.stop_gradient}
    for prefix, group in groups.items():
        found = {round(p.optimize_attr["learning_rate"], 2) for key, p in params.items() if key.startswith(prefix)}
        assert found == {1.0 if group is None else multipliers[group]}, prefix


@pytest.mark.parametrize(
    "name, exempt", [("MobileNetV3_small_x0_35", True), ("PPLCNet_x0_25", True), ("MobileNetV2_x0_25", False)]
)
def test_batchnorm_is_exempt_from_weight_decay_where_paddleclas_says(name, exempt):
    model = _build(name, class_num=2)
    norm = next(layer for layer in model.sublayers() if isinstance(layer, paddle.nn.BatchNorm2D))
    conv = next(layer for layer in model.sublayers() if isinstance(layer, paddle.nn.Conv2D))
    before = norm.weight.numpy().copy(), conv.weight.numpy().copy()
    # a step with zero gradients: only weight decay can move a parameter
    opt = paddle.optimizer.Momentum(0.1, parameters=model.parameters(), weight_decay=paddle.regularizer.L2Decay(0.5))
    (model(_images(2, 32)) * 0).sum().backward()
    opt.step()
    assert np.array_equal(norm.weight.numpy(), before[0]) == exempt
    assert not np.array_equal(conv.weight.numpy(), before[1])


@pytest.mark.parametrize(
    "name, kaiming",
    [
        ("MobileNetV1_x0_25", True),
        ("PPLCNet_x0_25", True),
        ("ShuffleNetV2_x0_25", True),
        ("MobileNetV3_small_x0_35", False),
    ],
)
def test_depthwise_convs_start_kaiming_normal_where_paddleclas_says(name, kaiming):
    model = _build(name)
    depthwise = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.Conv2D) and layer._groups > 1]
    weights = np.concatenate([layer.weight.numpy().ravel() for layer in depthwise if layer.weight.shape[2] == 3])
    # Kaiming-normal with fan-in 3*3 (one input channel per group) has std sqrt(2/9) = 0.47;
    # Paddle's default counts every input channel and starts them much smaller
    assert (abs(weights.std() - (2 / 9) ** 0.5) < 0.03) == kaiming


def test_weights_tables_cover_every_name_with_paddleclas_urls():
    for module in (mobilenet_v1, mobilenet_v2, mobilenet_v3, pplcnet, shufflenet_v2):
        names = list(module.VARIANTS)
        table = module.WEIGHTS
        assert set(names) <= set(table)
        assert {key.removesuffix("_ssld") for key in table} == set(names)
        for key, weights in table.items():
            assert weights.url.startswith(MODEL_ZOO_URL) and weights.url.endswith(f"/{key}_pretrained.pdparams")
            assert 0.45 < weights.top1 < 0.85 and weights.input_size == 224
    details = REGISTRY.resolve("backbone", "PPLCNet_x1_0").load().corolla_details()
    assert "PPLCNet_x1_0       top-1  71.32%  input 224" in details
    assert "PPLCNet_x1_0_ssld  top-1  74.39%  input 224" in details


def test_pretrained_true_with_ssld_loads_the_cached_file_except_a_new_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("COROLLA_WEIGHTS_DIR", str(tmp_path))
    published = _build("MobileNetV3_small_x0_35")
    paddle.save(published.state_dict(), str(tmp_path / "MobileNetV3_small_x0_35_ssld_pretrained.pdparams"))
    model = _build("MobileNetV3_small_x0_35", pretrained=True, use_ssld=True, class_num=10)
    ours, theirs = model.state_dict(), published.state_dict()
    for key in ours:
        if key.startswith("fc."):
            assert ours[key].shape[-1] == 10
        else:
            np.testing.assert_array_equal(ours[key].numpy(), theirs[key].numpy(), err_msg=key)
    with pytest.raises(ComponentArgumentError, match=r"no SSLD weights .*\(published for it: MobileNetV3_small_x0_5\)"):
        _build("MobileNetV3_small_x0_5", pretrained=True, use_ssld=True)
