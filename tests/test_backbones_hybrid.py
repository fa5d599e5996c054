"""Behaviour of the hybrid convolution/attention families (VAN, PVT_V2, Twins, TNT, UniFormer,
NextViT, LeViT) beyond the contract and parity tests: their own arguments, their stage
maps, and the shared attention pieces in ``_transformer``."""
from __future__ import annotations

import numpy as np
import paddle
import pytest
from _backbone_cases import REGISTRY, batch_size, cases, input_size, paddleclas, release_memory

from corolla.api import apply_state_dict
from corolla.plugin.errors import ComponentArgumentError
from corolla.plugins.backbones._regularize import drop_path_rates


def _images(batch: int, size: int, seed: int = 0) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal((batch, 3, size, size), dtype=np.float32))


def _stage_shapes(name: str, size: int, **options) -> dict[str, list[int]]:
    model = REGISTRY.build("backbone", name, {"return_stages": True, "class_num": 3, **options})
    model.eval()
    with paddle.no_grad():
        output = model(_images(1, size))
    return {key: list(value.shape) for key, value in output.items()}


# --- argument checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["VAN_B0", "PVT_V2_B0", "pcpvt_small"])
@pytest.mark.parametrize("argument", ["drop_rate", "drop_path_rate"])
def test_rates_are_checked(name, argument):
    with pytest.raises(ComponentArgumentError, match=rf"{name}: {argument} must be a number in \[0, 1\); got 1.5"):
        REGISTRY.build("backbone", name, {argument: 1.5})


# --- VAN ----------------------------------------------------------------------------------------


def test_van_stage_maps_and_drop_path():
    shapes = _stage_shapes("VAN_B0", 64)
    assert shapes == {
        "logits": [1, 3], "stage0": [1, 32, 16, 16], "stage1": [1, 64, 8, 8], "stage2": [1, 160, 4, 4], "stage3": [1, 256, 2, 2]
    }
    model = REGISTRY.build("backbone", "VAN_B0", {"drop_path_rate": 0.2})
    rates = [block.drop_path.rate for i in range(1, 5) for block in getattr(model, f"block{i}")]
    assert rates == pytest.approx(drop_path_rates(0.2, 13))
    assert len(model.lr_mult_list) == 5


# --- PVT_V2 -------------------------------------------------------------------------------------


def test_pvt_v2_stage_maps_and_spatial_reduction():
    shapes = _stage_shapes("PVT_V2_B0", 64)
    assert shapes == {
        "logits": [1, 3], "stage0": [1, 32, 16, 16], "stage1": [1, 64, 8, 8], "stage2": [1, 160, 4, 4], "stage3": [1, 256, 2, 2]
    }
    model = REGISTRY.build("backbone", "PVT_V2_B0", {"sr_ratios": [4, 2, 1, 1]})
    assert model.block1[0].attn.sr.weight.shape == [32, 32, 4, 4]
    assert model.block3[0].attn.sr is None  # no reduction: keys and values from every token
    with pytest.raises(ComponentArgumentError, match=r"PVT_V2_B0: sr_ratios needs 4 positive integers, one per stage"):
        REGISTRY.build("backbone", "PVT_V2_B0", {"sr_ratios": [8, 4, 2]})


def test_pvt_v2_linear_pools_keys_and_values_to_7x7():
    model = REGISTRY.build("backbone", "PVT_V2_B0", {"linear": True, "class_num": 3})
    attn = model.block1[0].attn
    assert attn.pool is not None and attn.sr.weight.shape == [32, 32, 1, 1]
    assert model.block1[0].mlp.relu is not None
    model.eval()
    with paddle.no_grad():
        assert model(_images(1, 96)).shape == [1, 3]


# --- Twins --------------------------------------------------------------------------------------


def test_twins_pcpvt_stage_maps_and_position_encoding_without_decay():
    shapes = _stage_shapes("pcpvt_small", 64)
    assert shapes == {
        "logits": [1, 3], "stage0": [1, 64, 16, 16], "stage1": [1, 128, 8, 8], "stage2": [1, 320, 4, 4], "stage3": [1, 512, 2, 2]
    }
    model = REGISTRY.build("backbone", "pcpvt_small")
    conv = model.pos_block[0].proj[0]
    assert float(conv.weight.regularizer._coeff) == 0.0 and float(conv.bias.regularizer._coeff) == 0.0


def test_twins_windowed_attention_attends_within_each_window():
    from corolla.plugins.backbones.twins import LocallyGroupedAttention

    paddle.seed(2)
    attn = LocallyGroupedAttention(8, 2, window_size=2, attn_drop=0.0, proj_drop=0.0)
    attn.eval()
    maps = paddle.randn([1, 8, 4, 6])  # 2 x 3 windows of 2 x 2
    tokens = maps.flatten(2).transpose([0, 2, 1])
    with paddle.no_grad():
        out = attn(tokens, 4, 6).transpose([0, 2, 1]).reshape([1, 8, 4, 6])
        # the top-left window alone gives the same output for its tokens
        window = maps[:, :, :2, :2].flatten(2).transpose([0, 2, 1])
        alone = attn(window, 2, 2).transpose([0, 2, 1]).reshape([1, 8, 2, 2])
    np.testing.assert_allclose(out[:, :, :2, :2].numpy(), alone.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"multiples of 2; got 4x5"):
        attn(paddle.randn([1, 20, 8]), 4, 5)


def test_twins_svt_alternates_windowed_and_subsampled_attention():
    from corolla.plugins.backbones._transformer import SpatialReductionAttention
    from corolla.plugins.backbones.twins import LocallyGroupedAttention

    with paddle.LazyGuard():
        model = REGISTRY.build("backbone", "alt_gvt_small")
    kinds = [type(block.attn) for block in model.blocks[2]]
    assert kinds == [LocallyGroupedAttention, SpatialReductionAttention] * 5


# --- TNT ----------------------------------------------------------------------------------------


def test_tnt_needs_224_input_and_has_no_stages():
    model = REGISTRY.build("backbone", "TNT_small", {"drop_path_rate": 0.1})
    assert model.lr_mult_list == [] and model.stage_count == 0
    assert model.blocks[-1].drop_path.rate == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"TNT_small takes 224x224 images \(its position embeddings are fixed\); got 64x64"):
        model(_images(1, 64))
    with pytest.raises(ComponentArgumentError, match=r"TNT_small: this family has no stages; use return_patterns"):
        REGISTRY.build("backbone", "TNT_small", {"return_stages": True})


# --- UniFormer ----------------------------------------------------------------------------------
# PaddleClas's UniFormer builders download their weights unless told pretrained=False, and
# UniFormer_base_ls switches layer scale on, module-wide, for every later build; the shared
# parity tests call builders without arguments, so UniFormer's parity is checked here instead.

UNIFORMERS = ["UniFormer_small", "UniFormer_small_plus", "UniFormer_small_plus_dim64", "UniFormer_base", "UniFormer_base_ls"]


def _paddleclas_uniformer(name: str) -> paddle.nn.Layer:
    paddleclas()
    from ppcls.arch.backbone.model_zoo import uniformer

    uniformer.layer_scale = False  # whatever built UniFormer_base_ls before in this process
    try:
        with paddle.utils.unique_name.guard():
            return getattr(uniformer, name)(pretrained=False)
    finally:
        uniformer.layer_scale = False


@pytest.mark.parametrize("name", cases(UNIFORMERS))
def test_uniformer_has_paddleclas_parameters_and_logits(name):
    theirs = _paddleclas_uniformer(name)
    with paddle.LazyGuard():  # every weight comes from theirs
        ours = REGISTRY.build("backbone", name)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    images = _images(batch_size(name), input_size(name), seed=3)
    norms = [layer for layer in theirs.sublayers() if isinstance(layer, paddle.nn.layer.norm._BatchNormBase)]
    for layer in norms:
        layer._momentum = 0.0  # running statistics := this batch's, so that eval-mode logits are not degenerate
    theirs.train()
    with paddle.no_grad():
        theirs(images)
    apply_state_dict(ours, {k: v.numpy() for k, v in theirs.state_dict().items()}, name=name, source="PaddleClas", strict=True)
    theirs.eval()
    ours.eval()
    with paddle.no_grad():
        expected, got = theirs(images).numpy(), ours(images).numpy()
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got / scale, expected / scale, rtol=0, atol=1e-4)
    del theirs, ours
    release_memory()


def test_uniformer_stage_maps_and_layer_scale():
    shapes = _stage_shapes("UniFormer_small_plus", 64)
    assert shapes == {
        "logits": [1, 3], "stage0": [1, 64, 16, 16], "stage1": [1, 128, 8, 8], "stage2": [1, 320, 4, 4], "stage3": [1, 512, 2, 2]
    }
    with paddle.LazyGuard():
        plain = REGISTRY.build("backbone", "UniFormer_base")
        scaled = REGISTRY.build("backbone", "UniFormer_base_ls")
    assert plain.blocks3[0].gamma_1 is None
    assert scaled.blocks3[0].gamma_1.shape == [320] and scaled.blocks1[0].drop_path.rate == 0.0
    assert scaled.blocks4[-1].drop_path.rate == pytest.approx(0.3)


# --- NextViT ------------------------------------------------------------------------------------


def test_nextvit_stage_maps_and_hybrid_layout():
    from corolla.plugins.backbones.nextvit import NCB, NTB

    shapes = _stage_shapes("NextViT_small_224", 64)
    assert shapes == {
        "logits": [1, 3], "stage0": [1, 96, 16, 16], "stage1": [1, 256, 8, 8], "stage2": [1, 512, 4, 4], "stage3": [1, 1024, 2, 2]
    }
    with paddle.LazyGuard():
        model = REGISTRY.build("backbone", "NextViT_base_224", {"drop": 0.1})
    kinds = "".join("T" if isinstance(block, NTB) else "C" for block in model.features)
    assert kinds == "CCC" + "CCCT" + "CCCCT" * 4 + "CCT"
    last = model.features[-1]
    assert last.mlp_path_dropout.rate == pytest.approx(0.2)
    assert last.mhsa_path_dropout.rate == pytest.approx(0.15) and last.mhca_path_dropout.rate == pytest.approx(0.05)
    assert last.mlp.drop.p == 0.1
    assert isinstance(model.features[0], NCB) and len(model.lr_mult_list) == 5


def test_nextvit_384_weights_are_for_384_input():
    details = REGISTRY.resolve("backbone", "NextViT_small_384").load().corolla_details()
    assert "input 384" in details and "NextViT_small_384_ssld" in details


# --- LeViT --------------------------------------------------------------------------------------


def test_levit_attention_bias_indices_follow_offsets():
    from corolla.plugins.backbones.levit import bias_indices

    count, indices = bias_indices(2, 2, 1)  # 2x2 grid: offsets (0,0), (0,1), (1,0), (1,1)
    assert count == 4
    assert indices[:4] == [0, 1, 2, 3] and indices[4 * 3 :] == [3, 2, 1, 0]
    count, indices = bias_indices(3, 2, 2)  # queries at (0,0), (0,2), (2,0), (2,2) of a 3x3 grid
    assert count == 9 and len(indices) == 4 * 9


def test_levit_stage_maps_and_distillation_head():
    model = REGISTRY.build("backbone", "LeViT_128S", {"class_num": 5, "distillation": True, "return_stages": True})
    images = _images(2, 224)
    model.train()
    output = model(images)
    assert sorted(output) == ["dist_logits", "logits", "stage0", "stage1", "stage2"]
    assert output["stage0"].shape == [2, 128, 14, 14] and output["stage2"].shape == [2, 384, 4, 4]
    assert output["dist_logits"].shape == [2, 5]
    model.eval()
    with paddle.no_grad():
        output = model(images)
        features = output["stage2"].flatten(2).mean(axis=2)
        expected = (model.head(features) + model.head_dist(features)) / 2
    np.testing.assert_allclose(output["logits"].numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"takes 224x224 images \(its attention biases are fixed\); got 64x64"):
        model(_images(1, 64))
    assert model.blocks[0].m.attention_biases.regularizer._coeff == 0.0


def test_levit_384_drops_residual_branches_in_training():
    with paddle.LazyGuard():
        model = REGISTRY.build("backbone", "LeViT_384")
    rates = {layer.drop_path.rate for layer in model.blocks if hasattr(layer, "drop_path")}
    assert rates == {0.1}
