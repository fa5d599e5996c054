"""What the ResNet-derived families (Res2Net, ResNeSt, RedNet, HRNet, DLA, DPN) do beyond the
registry-wide contract and parity tests: their stage layout, the PaddleClas parameter names
that make its weights load, the behaviour of their own blocks, and their weights tables."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from _backbone_cases import paddleclas

from corolla import load_registry
from corolla.api import MODEL_ZOO_URL, apply_state_dict, lazy_variants
from corolla.plugins.backbones import dla, dpn, hrnet, rednet, res2net, resnest

REGISTRY = load_registry()


def _build(name: str, **params) -> paddle.nn.Layer:
    return REGISTRY.build("backbone", name, params)


def _lazy_state_shapes(name: str) -> dict[str, list[int]]:
    """Parameter names and shapes of ``name``, built without initialising its weights."""
    with paddle.LazyGuard():
        model = _build(name)
    return {key: list(value.shape) for key, value in model.state_dict().items()}


def _tensor(batch: int, channels: int, size: int, seed: int = 0) -> paddle.Tensor:
    values = np.random.default_rng(seed).standard_normal((batch, channels, size, size), dtype=np.float32)
    return paddle.to_tensor(values)


def _images(batch: int, size: int, seed: int = 0) -> paddle.Tensor:
    return _tensor(batch, 3, size, seed)


def _stage_shapes(name: str, size: int = 64, **params) -> list[list[int]]:
    model = _build(name, return_stages=True, **params)
    model.eval()
    with paddle.no_grad():
        output = model(_images(1, size))
    return [output[f"stage{i}"].shape for i in range(len(output) - 1)]


def _lr_mult_by_prefix(name: str, prefixes: list[str]) -> dict[str, set[float]]:
    """Build ``name`` with multipliers 0.1, 0.2, ... and return the multipliers found on the
    trained parameters under each name prefix."""
    count = len(_build(name).lr_mult_list)
    model = _build(name, lr_mult_list=[round(0.1 * (i + 1), 2) for i in range(count)])
    params = [(key, p) for key, p in model.named_parameters() if not p.stop_gradient]
    return {
        prefix: {round(float(p.optimize_attr["learning_rate"]), 2) for key, p in params if key.startswith(prefix)}
        for prefix in prefixes
    }


# --- Res2Net -----------------------------------------------------------------------------------


def test_res2net_stages_are_the_four_resnet_stages():
    assert _stage_shapes("Res2Net50_14w_8s") == [[1, 256, 16, 16], [1, 512, 8, 8], [1, 1024, 4, 4], [1, 2048, 2, 2]]


def test_res2net_parameter_names_are_paddleclas_names():
    shapes = _lazy_state_shapes("Res2Net101_vd_26w_4s")
    # deep stem; the long third stage counts its blocks res4a, res4b1, ... res4b22
    assert shapes["conv1_3._conv.weight"] == [64, 32, 3, 3]
    assert shapes["bb_2_22.res4b22_branch2b_3._conv.weight"] == [104, 104, 3, 3]
    assert shapes["bb_3_0.short._conv.weight"] == [2048, 1024, 1, 1]
    assert shapes["out.weight"] == [2048, 1000]
    assert "conv1._conv.weight" in _lazy_state_shapes("Res2Net50_14w_8s")
    assert "bb_0_0.res2a_branch2b_7._batch_norm._variance" in _lazy_state_shapes("Res2Net50_14w_8s")


@pytest.mark.parametrize("stride, mixed", [(1, True), (2, False)])
def test_res2net_groups_take_the_previous_group_except_where_the_block_strides(stride, mixed):
    paddle.seed(0)
    block = res2net.Res2NetBottleneck(16, 16, width=16, scales=4, stride=stride, block_name="res", shortcut="conv")
    block.eval()
    inputs = []
    block.group_convs[1].register_forward_pre_hook(lambda layer, args: inputs.append(args[0]))
    x = _tensor(1, 16, 8)
    with paddle.no_grad():
        groups = block.conv0(x)
        first = block.group_convs[0](groups[:, :4])
        block(x)
    expected = groups[:, 4:8] + first if mixed else groups[:, 4:8]
    np.testing.assert_allclose(inputs[0].numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_res2net_lr_mult_list_groups_are_the_stem_and_the_stages():
    found = _lr_mult_by_prefix("Res2Net50_vd_26w_4s", ["conv1_", "bb_0_", "bb_1_", "bb_2_", "bb_3_", "out."])
    assert found == {"conv1_": {0.1}, "bb_0_": {0.2}, "bb_1_": {0.3}, "bb_2_": {0.4}, "bb_3_": {0.5}, "out.": {1.0}}


# --- ResNeSt ------------------------------------------------------------------------------------


def test_resnest_stages_and_paddleclas_parameter_names():
    assert _stage_shapes("ResNeSt50_fast_1s1x64d") == [
        [1, 256, 16, 16], [1, 512, 8, 8], [1, 1024, 4, 4], [1, 2048, 2, 2]
    ]
    shapes = _lazy_state_shapes("ResNeSt101")
    assert shapes["stem.conv3._conv.weight"] == [128, 64, 3, 3]  # stem width 64
    # the first block projects 128 -> 256 channels, at stride 1
    assert shapes["layer1.layer1_bottleneck_0.conv4.weight"] == [256, 128, 1, 1]
    assert shapes["layer3.layer3_bottleneck_22.conv2.conv1._conv.weight"] == [512, 128, 3, 3]  # radix 2
    assert shapes["layer3.layer3_bottleneck_22.conv2.conv3.bias"] == [512]
    assert "layer3.layer3_bottleneck_22.conv4.weight" not in shapes


@pytest.mark.parametrize("radix", [1, 2])
def test_split_attention_weighs_its_splits(radix):
    paddle.seed(1)
    conv = resnest.SplitAttentionConv(32, radix=radix)
    conv.eval()
    captured = []
    conv.conv1.register_forward_post_hook(lambda layer, args, output: captured.append(output))
    with paddle.no_grad():
        y = conv(_tensor(2, 32, 6)).numpy()
    splits = np.split(captured[0].numpy(), radix, axis=1)
    if radix == 1:  # a sigmoid gate: same sign, smaller magnitude
        assert np.all(y * splits[0] >= 0) and np.all(np.abs(y) <= np.abs(splits[0]))
    else:  # softmax over the splits: a convex combination, per channel
        low, high = np.minimum(*splits), np.maximum(*splits)
        assert np.all(y >= low - 1e-6) and np.all(y <= high + 1e-6)
        assert not np.allclose(y, splits[0]) and not np.allclose(y, splits[1])


def test_resnest_batchnorm_is_exempt_from_weight_decay_and_groups_are_stem_and_stages():
    model = _build("ResNeSt50_fast_1s1x64d", class_num=2)
    norm, conv = model.stem.conv1._batch_norm, model.stem.conv1._conv
    before = norm.weight.numpy().copy(), conv.weight.numpy().copy()
    # a step with zero gradients: only weight decay can move a parameter
    opt = paddle.optimizer.Momentum(0.1, parameters=model.parameters(), weight_decay=paddle.regularizer.L2Decay(0.5))
    (model(_images(2, 32)) * 0).sum().backward()
    opt.step()
    assert np.array_equal(norm.weight.numpy(), before[0])
    assert not np.array_equal(conv.weight.numpy(), before[1])
    found = _lr_mult_by_prefix("ResNeSt50_fast_1s1x64d", ["stem.", "layer1.", "layer2.", "layer3.", "layer4.", "out."])
    assert found == {
        "stem.": {0.1}, "layer1.": {0.2}, "layer2.": {0.3}, "layer3.": {0.4}, "layer4.": {0.5}, "out.": {1.0}
    }


# --- RedNet -------------------------------------------------------------------------------------


def test_rednet_stages_and_paddleclas_parameter_names():
    assert _stage_shapes("RedNet26") == [[1, 256, 16, 16], [1, 512, 8, 8], [1, 1024, 4, 4], [1, 2048, 2, 2]]
    shapes = _lazy_state_shapes("RedNet26")
    assert shapes["stem.1.conv2.conv.weight"] == [18, 8, 1, 1]  # one 3x3 kernel per group of 16 channels
    assert shapes["stem.2._variance"] == [32]
    assert shapes["layer2.0.conv2.conv2.conv.bias"] == [49 * 8]  # 7x7 kernels, 128 channels
    assert shapes["layer2.0.downsample.0.weight"] == [512, 256, 1, 1]
    assert shapes["fc.weight"] == [2048, 1000]


@pytest.mark.parametrize("stride, size, expected", [(1, 6, 6), (2, 6, 3), (2, 7, 4)])
def test_involution_with_a_centre_kernel_passes_its_input_through(stride, size, expected):
    involution = rednet.Involution(32, 7, stride)
    involution.eval()
    # kernels that weigh only the centre of each window, at every pixel and for both groups
    centre = np.zeros([49, 2], dtype=np.float32)
    centre[24] = 1.0
    involution.conv2.conv.weight.set_value(np.zeros(involution.conv2.conv.weight.shape, dtype=np.float32))
    involution.conv2.conv.bias.set_value(centre.T.ravel())
    x = _tensor(2, 32, size)
    with paddle.no_grad():
        y = involution(x)
    assert y.shape == [2, 32, expected, expected]  # odd maps too, where PaddleClas's fails
    np.testing.assert_allclose(y.numpy(), x.numpy()[:, :, ::stride, ::stride], rtol=1e-6)


def test_rednet_blocks_start_as_their_shortcut():
    model = _build("RedNet26")
    model.eval()
    block = model.layer3[1]
    assert not block.bn3.weight.numpy().any()
    x = paddle.nn.functional.relu(_tensor(1, 1024, 4))
    with paddle.no_grad():
        np.testing.assert_array_equal(block(x).numpy(), x.numpy())
        assert np.isfinite(model(_images(1, 64)).numpy()).all()


# --- HRNet --------------------------------------------------------------------------------------


def test_hrnet_stages_are_st4s_four_branches():
    assert _stage_shapes("HRNet_W18_C") == [[1, 18, 16, 16], [1, 36, 8, 8], [1, 72, 4, 4], [1, 144, 2, 2]]


def test_hrnet_fuse_convs_are_listed_in_paddleclas_order():
    fuse = hrnet.FuseLayers([4, 8, 16])
    # by output branch, then input branch: coarser inputs by a 1x1 conv, finer ones by strided 3x3 convs
    assert [conv.conv.weight.shape for conv in fuse.residual_func_list] == [
        [4, 8, 1, 1], [4, 16, 1, 1],
        [8, 4, 3, 3], [8, 16, 1, 1],
        [4, 4, 3, 3], [16, 4, 3, 3], [16, 8, 3, 3],
    ]
    outputs = fuse([_tensor(1, 4, 8), _tensor(1, 8, 4), _tensor(1, 16, 2)])
    assert [y.shape for y in outputs] == [[1, 4, 8, 8], [1, 8, 4, 4], [1, 16, 2, 2]]


def test_hrnet_squeeze_excitation_gates_each_channel():
    se = hrnet.SqueezeExcitation(32)
    x = _tensor(2, 32, 4)
    y = se(x).numpy()
    gate = y / x.numpy()
    assert np.all((gate > 0) & (gate < 1))
    np.testing.assert_allclose(gate, gate[:, :, :1, :1] * np.ones_like(gate), rtol=1e-4)  # one gate per channel
    assert "st2.stage_func_list.0.basic_block_list.1.3.se.fc_squeeze.weight" in _lazy_state_shapes("SE_HRNet_W64_C")


def test_hrnet_lr_mult_list_groups():
    prefixes = [
        "conv_layer1_", "layer1.", "conv_tr1_", "st2.", "st3.", "conv_tr3.", "st4.", "last_cls.", "conv_last.", "fc."
    ]
    found = _lr_mult_by_prefix("HRNet_W18_C", prefixes)
    assert found == {
        "conv_layer1_": {0.1}, "layer1.": {0.2}, "conv_tr1_": {0.3}, "st2.": {0.3}, "st3.": {0.4},
        "conv_tr3.": {0.5}, "st4.": {0.5}, "last_cls.": {0.6}, "conv_last.": {0.6}, "fc.": {1.0},
    }


def _paddleclas_hrnet(name: str) -> paddle.nn.Layer:
    """PaddleClas's model of ``name`` built from its HRNet class: its own ``HRNet_W60_C`` and
    ``SE_HRNet_W64_C`` builders fail (they look up weights URLs it does not list)."""
    module = paddleclas().arch.backbone.legendary_models.hrnet
    return module.HRNet(width=60 if "W60" in name else 64, has_se=name.startswith("SE_"), stages_pattern=["st4"])


@pytest.mark.parametrize("name", ["HRNet_W60_C", "SE_HRNet_W64_C"])
def test_hrnet_names_paddleclas_cannot_build_match_its_hrnet_class(name):
    with paddle.LazyGuard():
        theirs = {key: list(value.shape) for key, value in _paddleclas_hrnet(name).state_dict().items()}
    assert _lazy_state_shapes(name) == theirs


@pytest.mark.slow
def test_se_hrnet_w64_c_logits_match_paddleclas_hrnet_class():
    theirs = _paddleclas_hrnet("SE_HRNet_W64_C")
    with paddle.LazyGuard():  # every weight comes from theirs
        ours = _build("SE_HRNet_W64_C")
    images = _images(2, hrnet.MIN_INPUT_SIZE)
    for layer in theirs.sublayers():
        if isinstance(layer, (paddle.nn.BatchNorm, paddle.nn.layer.norm._BatchNormBase)):
            layer._momentum = 0.0  # running statistics := this batch's, as the parity test does
    with paddle.no_grad():
        theirs(images)
    state = {key: value.numpy() for key, value in theirs.state_dict().items()}
    apply_state_dict(ours, state, name="SE_HRNet_W64_C", source="PaddleClas", strict=True)
    theirs.eval()
    ours.eval()
    with paddle.no_grad():
        expected, got = theirs(images).numpy(), ours(images).numpy()
    scale = np.abs(expected).max()
    assert np.isfinite(scale) and scale > 0
    np.testing.assert_allclose(got / scale, expected / scale, rtol=0, atol=1e-4)


# --- DLA ----------------------------------------------------------------------------------------


def test_dla_stages_are_its_six_levels():
    assert _stage_shapes("DLA46x_c") == [
        [1, 16, 64, 64], [1, 32, 32, 32], [1, 64, 16, 16], [1, 64, 8, 8], [1, 128, 4, 4], [1, 256, 2, 2]
    ]


def test_dla_roots_aggregate_the_tree_and_the_stage_input():
    model = _build("DLA34")
    counts = {}
    for name in ("level2.root", "level3.tree1.root", "level3.tree2.root"):
        layer = dict(model.named_sublayers())[name]
        layer.register_forward_pre_hook(
            lambda layer, args, name=name: counts.update({name: [a.shape[1] for a in args]})
        )
    model.eval()
    with paddle.no_grad():
        model(_images(1, 32))
    # its two blocks; in the last tree of a stage also the stage's pooled input and the first subtree's output
    assert counts == {
        "level2.root": [64, 64], "level3.tree1.root": [128, 128], "level3.tree2.root": [128, 128, 64, 128]
    }
    assert _lazy_state_shapes("DLA34")["level3.tree2.root.conv.weight"] == [128, 448, 1, 1]


@pytest.mark.parametrize("residual", [False, True])
def test_dla_root_adds_its_first_input_only_with_residual(residual):
    root = dla.Root(8, 4, residual=residual)
    root.conv.weight.set_value(np.zeros([4, 8, 1, 1], dtype=np.float32))
    root.eval()
    first = _tensor(1, 4, 3)
    with paddle.no_grad():
        y = root(first, _tensor(1, 4, 3, seed=1)).numpy()
    np.testing.assert_allclose(y, np.maximum(first.numpy(), 0) if residual else np.zeros_like(y), atol=1e-6)


def test_dla_convs_start_normal_with_fan_out_std_and_groups_are_the_levels():
    weight = _build("DLA46x_c").level1[0].weight.numpy()
    assert abs(weight.std() / (2 / (32 * 9)) ** 0.5 - 1) < 0.05
    found = _lr_mult_by_prefix("DLA46x_c", ["base_layer.", "level0.", "level1.", "level2.", "level5.", "fc."])
    assert found == {
        "base_layer.": {0.1}, "level0.": {0.2}, "level1.": {0.3}, "level2.": {0.4}, "level5.": {0.7}, "fc.": {1.0}
    }


# --- DPN ----------------------------------------------------------------------------------------


def test_dpn_stages_join_both_paths():
    # residual width + dense channels: 2 increments from the projection, 1 more per block
    assert _stage_shapes("DPN68") == [[1, 144, 16, 16], [1, 320, 8, 8], [1, 704, 4, 4], [1, 832, 2, 2]]
    shapes = _lazy_state_shapes("DPN92")
    # blocks are numbered across stages; each stage's first projects the joined paths
    assert shapes["dpn4.c1x1_w_func._conv.weight"] == [512 + 2 * 32, 256 + 5 * 16, 1, 1]
    assert "dpn5.c1x1_w_func._conv.weight" not in shapes
    assert shapes["dpn30.c3x3_b_func._conv.weight"] == [768, 768 // 32, 3, 3]
    assert shapes["conv5_x_x_bn._variance"] == [2048 + 5 * 128]


def test_dpn_block_adds_to_the_residual_path_and_appends_to_the_dense_one():
    block = dpn.DualPathBlock(14, inner=8, width=8, increment=4, groups=2, project=False, stride=1)
    block.eval()
    residual, dense = _tensor(1, 8, 4), _tensor(1, 6, 4, seed=1)
    with paddle.no_grad():
        new_residual, new_dense = block((residual, dense))
        y = block.c1x1_c_func(block.c3x3_b_func(block.c1x1_a_func(paddle.concat([residual, dense], axis=1))))
    np.testing.assert_allclose(new_residual.numpy(), (residual + y[:, :8]).numpy(), rtol=1e-6)
    assert new_dense.shape == [1, 10, 4, 4]
    np.testing.assert_array_equal(new_dense.numpy()[:, :6], dense.numpy())
    np.testing.assert_array_equal(new_dense.numpy()[:, 6:], y.numpy()[:, 8:])


def test_dpn_lr_mult_list_groups_are_the_stem_and_the_stages():
    prefixes = ["conv1_x_1_func.", "dpn1.", "dpn3.", "dpn4.", "dpn8.", "dpn20.", "dpn22.", "conv5_x_x_bn.", "out."]
    found = _lr_mult_by_prefix("DPN68", prefixes)
    assert found == {
        "conv1_x_1_func.": {0.1}, "dpn1.": {0.2}, "dpn3.": {0.2}, "dpn4.": {0.3}, "dpn8.": {0.4}, "dpn20.": {0.5},
        "dpn22.": {0.5}, "conv5_x_x_bn.": {0.5}, "out.": {1.0},
    }


# --- weights tables ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, ssld",
    [
        (res2net, {"Res2Net50_vd_26w_4s", "Res2Net101_vd_26w_4s", "Res2Net200_vd_26w_4s"}),
        (resnest, set()),
        (rednet, set()),
        (hrnet, {"HRNet_W18_C", "HRNet_W48_C", "SE_HRNet_W64_C"}),
        (dla, set()),
        (dpn, set()),
    ],
)
def test_weights_tables_cover_every_name_with_paddleclas_urls(module, ssld):
    names = set(lazy_variants(module.__name__))
    table = module.WEIGHTS
    assert {key for key in table if not key.endswith("_ssld")} <= names
    assert {key.removesuffix("_ssld") for key in table if key.endswith("_ssld")} == ssld
    for key, weights in table.items():
        assert weights.url.startswith(MODEL_ZOO_URL) and weights.url.endswith(f"/{key}_pretrained.pdparams")
        assert ("/legendary_models/" in weights.url) == (module is hrnet)
        assert weights.top1 is None or 0.6 < weights.top1 < 0.86
