"""Transforms and batch transforms: every op's contract, statistics of random ops, hand-computed results."""
from __future__ import annotations

import importlib.util
import io
import math
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corolla import ComponentArgumentError, ConfigError, DataError, load_registry
from corolla.data.pipeline import LabeledImage, Pipeline, UnreadableImageError
from engine_support import batch_ops_of, pipeline_of
from corolla.data.randomness import generator, reseed

REQUIRED = {"ResizeImage": {"size": 32}, "CropImage": {"size": 16}, "RandCropImage": {"size": 24},
            "RandomRotation": {"degrees": 20}, "GridMask": {"d1": 4, "d2": 12}, "NormalizeImage": {"order": ""},
            "RandomCropImage": {"size": 16}, "CropImageAtRatio": {"size": 16, "pad": 4}, "Padv2": {"size": [50, 44]}}
#: the image size (h, w) of a 40x48 image after each op that changes it
SIZES = {"ResizeImage": (32, 32), "CropImage": (16, 16), "RandCropImage": (24, 24), "RandomCropImage": (16, 16),
         "CropImageAtRatio": (16, 16), "Padv2": (44, 50)}


def image_of(out):
    """The image an op returned (an op that makes labels returns it with them)."""
    return out.image if isinstance(out, LabeledImage) else out


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    reseed(1234)


def build(registry, name: str, **params):
    return registry.build("transform", name, params)


def rgb(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


# --- every registered transform ---------------------------------------------------


def test_every_registered_transform_keeps_the_image_contract(registry) -> None:
    img = rgb()
    names = registry.names("transform")
    assert len(names) >= 16
    for name in names:
        op = build(registry, name, **REQUIRED.get(name, {}))
        out = image_of(op(encode(img) if name == "DecodeImage" else img))
        assert isinstance(out, np.ndarray) and out.ndim == 3, name
        if name == "NormalizeImage":
            assert out.shape == img.shape and out.dtype == np.float32 and -2.2 < out.min() < out.max() < 2.7
            continue
        if name == "ToCHWImage":
            assert out.shape == (3, 40, 48)
            continue
        assert out.dtype == np.uint8 and out.shape[2] == 3, name
        expected = SIZES.get(name, (40, 48))
        assert out.shape[:2] == expected or (name == "RandomRot90" and out.shape[:2] == expected[::-1]), name


def test_every_transform_is_deterministic_for_a_seed(registry) -> None:
    img = rgb()
    for name in registry.names("transform"):
        op = build(registry, name, **REQUIRED.get(name, {}))
        data = encode(img) if name == "DecodeImage" else img
        reseed(7)
        first = np.array(image_of(op(data)))
        reseed(7)
        assert np.array_equal(first, image_of(op(data))), name


# --- DecodeImage ------------------------------------------------------------------


def test_decode_png_is_exact_and_honours_channel_options(registry) -> None:
    img = rgb()
    assert np.array_equal(build(registry, "DecodeImage")(encode(img)), img)
    assert np.array_equal(build(registry, "DecodeImage", to_rgb=False)(encode(img)), img[:, :, ::-1])
    assert np.array_equal(build(registry, "DecodeImage", channel_first=True)(encode(img)), img.transpose(2, 0, 1))
    grey = img[:, :, 0]
    decoded = build(registry, "DecodeImage")(encode(grey))
    assert decoded.shape == (40, 48, 3) and all(np.array_equal(decoded[:, :, c], grey) for c in range(3))


def test_decode_scales_16_bit_grey_to_8_bits(registry) -> None:
    wide = np.linspace(0, 65535, 40 * 48).reshape(40, 48).astype(np.uint16)
    stream = io.BytesIO()
    Image.fromarray(wide).save(stream, format="PNG")  # PIL mode I;16
    decoded = build(registry, "DecodeImage")(stream.getvalue())
    assert decoded.dtype == np.uint8 and decoded.shape == (40, 48, 3)
    np.testing.assert_array_equal(decoded[:, :, 1], wide >> 8)  # not clipped to white


@pytest.mark.parametrize("data", [b"", b"not an image", encode(rgb(64, 64), "JPEG")[:300]])
def test_decode_rejects_broken_data(registry, data: bytes) -> None:
    with pytest.raises(UnreadableImageError, match="decode|expected encoded"):
        build(registry, "DecodeImage")(data)


def test_decode_cv2_backend_without_opencv_is_a_clear_error(registry) -> None:
    if importlib.util.find_spec("cv2") is not None:
        pytest.skip("OpenCV is installed")
    with pytest.raises(ComponentArgumentError, match="opencv"):
        pipeline_of([{"DecodeImage": {"backend": "cv2"}}], registry, "T")


# --- geometry ---------------------------------------------------------------------


def test_resize_short_side_and_box_filter(registry) -> None:
    img = rgb(200, 300)
    assert build(registry, "ResizeImage", resize_short=100)(img).shape == (100, 150, 3)
    assert build(registry, "ResizeImage", size=[30, 20])(img).shape == (20, 30, 3)
    # a 2x box downscale is the mean of each 2x2 block (values chosen so the mean is an integer)
    img = (np.arange(16, dtype=np.uint8).reshape(4, 4) * 4)[:, :, None].repeat(3, axis=2)
    out = build(registry, "ResizeImage", size=2, interpolation="box")(img)
    expected = img.reshape(2, 2, 2, 2, 3).mean(axis=(1, 3))
    assert np.array_equal(out, expected.astype(np.uint8))


def test_resize_needs_a_size(registry) -> None:
    with pytest.raises(ComponentArgumentError, match=r"T\.1\.ResizeImage: .*give 'size' or 'resize_short'"):
        pipeline_of([{"DecodeImage": None}, {"ResizeImage": None}], registry, "T")
    with pytest.raises(ComponentArgumentError, match="interpolation"):
        pipeline_of([{"DecodeImage": None}, {"ResizeImage": {"size": 8, "interpolation": "cubic"}}], registry, "T")


def test_center_crop(registry) -> None:
    img = rgb(10, 12)
    assert np.array_equal(build(registry, "CropImage", size=[4, 6])(img), img[2:8, 4:8])
    with pytest.raises(ValueError, match="cannot crop 16x16 from a 12x10 image"):
        build(registry, "CropImage", size=16)(img)


def _coordinates(h: int, w: int) -> np.ndarray:
    """An image whose pixels hold their own (row, column), to read back where a crop came from."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def _crop_boxes(op, img: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Area fractions and aspect ratios (w / h) of ``n`` crops, read back from a coordinate image."""
    areas, aspects = [], []
    for _ in range(n):
        out = op(img)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        rows, cols = out[:, :, 0].astype(int), out[:, :, 1].astype(int)
        height = (rows.max() - rows.min()) * 32 / 31  # nearest sampling spans (n-1)/n of the crop
        width = (cols.max() - cols.min()) * 32 / 31
        areas.append(height * width / (img.shape[0] * img.shape[1]))
        aspects.append(width / max(height, 1))
    return np.array(areas), np.array(aspects)


def test_rand_crop_area_is_uniform_in_scale(registry) -> None:
    op = build(registry, "RandCropImage", size=32, ratio=[1, 1], interpolation="nearest")
    areas, aspects = _crop_boxes(op, _coordinates(200, 200), 300)
    assert areas.min() >= 0.08 * 0.85 and areas.max() <= 1.0 + 1e-6
    assert abs(areas.mean() - 0.54) < 0.05  # uniform on [0.08, 1]
    assert np.allclose(aspects, 1.0, atol=0.06)


@pytest.mark.parametrize("use_log_aspect", [False, True])
def test_rand_crop_aspect_stays_in_ratio(registry, use_log_aspect: bool) -> None:
    op = build(registry, "RandCropImage", size=32, interpolation="nearest", use_log_aspect=use_log_aspect)
    areas, aspects = _crop_boxes(op, _coordinates(200, 240), 300)
    assert areas.min() >= 0.08 * 0.85 and areas.max() <= 1.0 + 1e-6
    assert aspects.min() > 0.75 * 0.9 and aspects.max() < 4 / 3 * 1.1
    assert aspects.min() < 0.85 and aspects.max() > 1.2  # the whole range is used


def test_rand_flip_probability_and_codes(registry) -> None:
    img = rgb(8, 10)
    for code, flipped in ((1, img[:, ::-1]), (0, img[::-1]), (-1, img[::-1, ::-1])):
        op = build(registry, "RandFlipImage", flip_code=code)
        results = [op(img) for _ in range(400)]
        n_flipped = sum(np.array_equal(r, flipped) for r in results)
        assert all(np.array_equal(r, img) or np.array_equal(r, flipped) for r in results)
        assert 160 <= n_flipped <= 240  # p = 0.5
    with pytest.raises(ValueError, match="flip_code"):
        build(registry, "RandFlipImage", flip_code=2)


def test_random_rotation_by_a_fixed_angle(registry) -> None:
    img = rgb(16, 16)
    assert np.array_equal(build(registry, "RandomRotation", degrees=[90, 90])(img), np.rot90(img))
    out = build(registry, "RandomRotation", degrees=[45, 45], fill=7)(np.full((16, 16, 3), 200, np.uint8))
    assert (out[0, 0] == 7).all() and (out[8, 8] == 200).all()
    angles = build(registry, "RandomRotation", degrees=30).degrees
    assert angles == (-30.0, 30.0)


# --- colour -----------------------------------------------------------------------


def test_color_jitter_ranges(registry) -> None:
    img = np.full((8, 8, 3), 100, np.uint8)
    assert np.array_equal(build(registry, "ColorJitter")(img), img)
    op = build(registry, "ColorJitter", brightness=0.5)
    ratios = np.array([op(img).mean() / 100 for _ in range(300)])
    assert ratios.min() >= 0.5 - 0.01 and ratios.max() <= 1.5 + 0.01
    assert abs(ratios.mean() - 1.0) < 0.05
    grey = build(registry, "ColorJitter", saturation=0.8, hue=0.4)(img)
    assert np.abs(grey.astype(int) - 100).max() <= 1  # a grey image has no colour to change
    assert np.array_equal(build(registry, "ColorJitter", brightness=0.9, prob=0.0)(img), img)
    with pytest.raises(ValueError, match="hue"):
        build(registry, "ColorJitter", hue=0.7)


# --- normalisation ----------------------------------------------------------------


def test_normalize_matches_hand_computation(registry) -> None:
    img = np.array([[[0, 128, 255]]], np.uint8)
    op = build(registry, "NormalizeImage", scale="1.0/255.0", mean=[0.5, 0.5, 0.5], std=[0.5, 0.25, 0.5], order="")
    out = op(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [-1.0, (128 / 255 - 0.5) / 0.25, 1.0], rtol=1e-6, atol=1e-6)
    chw = build(registry, "NormalizeImage", mean=[0, 0, 0], std=[1, 1, 1])(img.transpose(2, 0, 1))
    np.testing.assert_allclose(chw[:, 0, 0], [0, 128 / 255, 1], rtol=1e-6)
    four = build(registry, "NormalizeImage", order="", channel_num=4, output_fp16=True)(rgb(4, 4))
    assert four.shape == (4, 4, 4) and four.dtype == np.float16 and (four[:, :, 3] == 0).all()


def test_normalize_batch_equals_one_by_one(registry) -> None:
    op = build(registry, "NormalizeImage", order="")
    batch = np.stack([rgb(seed=i) for i in range(4)])
    one_by_one = np.stack([op(img) for img in batch])
    assert np.array_equal(op.apply_batch(batch), one_by_one)
    flipped = [img[:, ::-1] for img in batch]  # views, as RandFlipImage hands them on
    assert np.array_equal(op.apply_batch(flipped), one_by_one[:, :, ::-1])
    chw = build(registry, "NormalizeImage")
    assert np.array_equal(chw.apply_batch([img.transpose(2, 0, 1) for img in batch]), one_by_one.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="3 channels"):
        op.apply_batch([rgb()[:, :, :2]])


def test_normalize_rejects_bad_values(registry) -> None:
    with pytest.raises(ValueError, match="scale"):
        build(registry, "NormalizeImage", scale="__import__('os')")
    with pytest.raises(ValueError, match="std"):
        build(registry, "NormalizeImage", std=[1, 0, 1])
    with pytest.raises(ValueError, match="order"):
        build(registry, "NormalizeImage", order="nhwc")


def test_to_chw(registry) -> None:
    img = rgb(5, 7)
    assert np.array_equal(build(registry, "ToCHWImage")(img), img.transpose(2, 0, 1))


# --- occlusion --------------------------------------------------------------------


def _erased_boxes(op, n: int, h: int = 60, w: int = 80) -> list[tuple[int, int] | None]:
    """(height, width) of the zeroed rectangle per draw, or None when nothing was erased."""
    boxes = []
    for _ in range(n):
        out = op(np.ones((h, w, 3), np.float32))
        zero = out[:, :, 0] == 0
        if not zero.any():
            boxes.append(None)
            continue
        rows, cols = np.where(zero)
        box_h, box_w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert zero.sum() == box_h * box_w  # one solid rectangle
        boxes.append((box_h, box_w))
    return boxes


@pytest.mark.parametrize("use_log_aspect", [False, True])
def test_random_erasing_probability_area_and_aspect(registry, use_log_aspect: bool) -> None:
    op = build(registry, "RandomErasing", EPSILON=0.3, use_log_aspect=use_log_aspect)
    boxes = _erased_boxes(op, 1000)
    erased = [b for b in boxes if b is not None]
    assert abs(len(erased) / 1000 - 0.3) < 0.05
    fractions = np.array([h * w / (60 * 80) for h, w in erased])
    assert fractions.min() >= 0.02 * 0.8 and fractions.max() <= 0.4 * 1.2  # [sl, sh] up to rounding
    aspects = np.array([h / w for h, w in erased])
    assert aspects.min() >= 0.3 * 0.7 and aspects.max() <= 1 / 0.3 * 1.4  # [r1, 1/r1] up to rounding


def test_random_erasing_modes(registry) -> None:
    always = {"EPSILON": 1.0, "sl": 0.2, "sh": 0.2}
    const = build(registry, "RandomErasing", mean=[0.25, 0.5, 0.75], **always)(np.ones((40, 40, 3), np.float32))
    changed = const[:, :, 0] != 1
    assert 0.15 < changed.mean() < 0.25 and np.allclose(const[changed], [0.25, 0.5, 0.75])
    rand = build(registry, "RandomErasing", mode="rand", **always)(np.full((40, 40, 3), 9, np.float32))
    values = rand[rand[:, :, 0] != 9]
    assert len(np.unique(values[:, 0])) == 1  # one value per channel
    pixel = build(registry, "RandomErasing", mode="pixel", **always)(np.full((40, 40, 3), 9, np.float32))
    noise = pixel[pixel != 9]
    assert len(np.unique(noise)) > 100 and abs(noise.mean()) < 0.2 and abs(noise.std() - 1) < 0.2
    with pytest.raises(ValueError, match="mode"):
        build(registry, "RandomErasing", mode="zeros")
    assert build(registry, "RandomErasing", EPSILON=0.0).EPSILON == 0.0


def test_random_erasing_batch_equals_one_by_one(registry) -> None:
    op = build(registry, "RandomErasing", EPSILON=0.7, mode="pixel")
    batch = np.ones((6, 20, 20, 3), np.float32)
    reseed(5)
    one_by_one = np.stack([op(img) for img in batch])
    reseed(5)
    assert np.array_equal(op.apply_batch(batch.copy()), one_by_one)


def test_cutout_square_and_fill(registry) -> None:
    sizes = []
    for _ in range(200):
        out = build(registry, "Cutout", length=8)(np.full((32, 32, 3), 255, np.uint8))
        sizes.append((out == 0).all(axis=2).sum())
    assert max(sizes) == 64 and min(sizes) >= 16  # an 8x8 square, clipped at the borders
    coloured = build(registry, "Cutout", length=40, fill_value="none")(np.full((32, 32, 3), 255, np.uint8))
    assert (coloured != 255).any()


def test_grid_mask_fraction(registry) -> None:
    img = np.ones((64, 64, 3), np.float32)
    zeroed = np.mean([(build(registry, "GridMask", d1=8, d2=9)(img) == 0).mean() for _ in range(20)])
    assert abs(zeroed - 0.75) < 0.06  # stripes of width 4 every 8 pixels, both ways: 1 - (4/8)^2
    kept = np.mean([(build(registry, "GridMask", d1=8, d2=9, mode=1)(img) == 0).mean() for _ in range(20)])
    assert abs(kept - 0.25) < 0.06
    assert np.array_equal(build(registry, "GridMask", prob=0.0)(img), img)


def test_hide_and_seek_fraction(registry) -> None:
    op = build(registry, "HideAndSeek")
    hidden = [(op(np.ones((112, 112, 3), np.float32)) == 0).mean() for _ in range(300)]
    assert abs(np.mean(hidden) - 0.4) < 0.05  # 4 of 5 grid sizes hide, each patch with p = 0.5


# --- automatic augmentation ---------------------------------------------------------


def test_pil_operations_by_hand() -> None:
    from corolla.plugins.transforms import pil_ops
    from corolla.plugins.transforms.timm_autoaugment import AugmentOp

    ramp = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).convert("RGB")
    values = np.arange(256)
    assert np.array_equal(np.asarray(pil_ops.invert(ramp))[..., 0].ravel(), 255 - values)
    assert np.array_equal(np.asarray(pil_ops.solarize(ramp, 128))[..., 0].ravel(), np.where(values >= 128, 255 - values, values))
    assert np.array_equal(np.asarray(pil_ops.posterize(ramp, 2))[..., 0].ravel(), values & 0b11000000)
    assert not np.asarray(pil_ops.posterize(ramp, 0)).any()  # no bit kept (Pillow 13 itself refuses 0 bits)
    strongest = AugmentOp("PosterizeIncreasing", 1.0, 10.0, {})  # TimmAutoAugment's inc1 at magnitude 10: 0 bits
    assert not np.asarray(strongest(ramp)).any()
    assert np.array_equal(np.asarray(pil_ops.solarize_add(ramp, 200))[..., 0].ravel(), np.where(values < 128, np.minimum(values + 200, 255), values))
    assert np.array_equal(np.asarray(pil_ops.shear_x(ramp, 0.0)), np.asarray(ramp))


@pytest.mark.parametrize("name, params", [("AutoAugment", {}), ("RandAugment", {"magnitude": 9}),
                                          ("TimmAutoAugment", {}), ("TimmAutoAugment", {"config_str": "augmix-m5-w2"}),
                                          ("TimmAutoAugment", {"config_str": "original-mstd0.5"})])
def test_auto_augment_changes_images(registry, name: str, params: dict) -> None:
    op = build(registry, name, **params)
    img = rgb(32, 32)
    outputs = [op(img) for _ in range(60)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outputs)
    changed = np.mean([not np.array_equal(o, img) for o in outputs])
    assert changed > 0.5


def test_timm_auto_augment_prob(registry) -> None:
    img = rgb(24, 24)
    assert all(np.array_equal(build(registry, "TimmAutoAugment", prob=0.0)(img), img) for _ in range(20))
    op = build(registry, "TimmAutoAugment", prob=0.3, config_str="rand-m9-n1-mstd0.5")
    changed = np.mean([not np.array_equal(op(img), img) for _ in range(600)])
    # the op runs with p = 0.3; a RandAugment layer then changes the image with p = 0.5 at most
    assert 0.05 < changed <= 0.3 + 0.05


@pytest.mark.parametrize("config_str", ["rand-x3", "v0", "auto-v0r", "augmix-q2"])
def test_timm_auto_augment_rejects_unknown_config(registry, config_str: str) -> None:
    with pytest.raises(ValueError, match="config_str"):
        build(registry, "TimmAutoAugment", config_str=config_str)


# --- pipelines --------------------------------------------------------------------

TRAIN_OPS = [
    {"DecodeImage": {"to_rgb": True, "channel_first": False}},
    {"RandCropImage": {"size": 24}},
    {"RandFlipImage": {"flip_code": 1}},
    {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "order": ""}},
    {"RandomErasing": {"EPSILON": 0.5, "mode": "pixel"}},
]


def test_pipeline_splits_per_image_and_per_batch_work(registry) -> None:
    pipeline = pipeline_of(TRAIN_OPS, registry, "DataLoader.Train.dataset.transform_ops")
    assert pipeline.split == 3  # NormalizeImage and RandomErasing run per batch
    data = encode(rgb(40, 48))
    reseed(3)
    whole = pipeline(data)
    reseed(3)
    assert np.array_equal(whole, pipeline.finish([pipeline.sample(data)])[0])
    assert whole.shape == (3, 24, 24) and whole.dtype == np.float32
    assert pipeline.sample(data).dtype == np.uint8
    assert pipeline.sample(rgb(40, 48)).shape == (24, 24, 3)  # an already decoded image is accepted too


def test_pipeline_batches_flipped_samples_like_single_images(registry) -> None:
    pipeline = pipeline_of(TRAIN_OPS[:4], registry, "T")  # NormalizeImage stacks the samples itself
    reseed(4)
    samples = [pipeline.sample(encode(rgb(40, 48, seed=i))) for i in range(8)]
    assert any(s.strides[1] < 0 for s in samples)  # some were flipped (views)
    batch = pipeline.finish(samples)
    assert batch.flags.c_contiguous and batch.shape == (8, 3, 24, 24)
    assert np.array_equal(batch, np.stack([pipeline.finish([s])[0] for s in samples]))


def test_pipeline_without_normalisation_still_gives_float_chw(registry) -> None:
    img = rgb(10, 12)
    out = pipeline_of([{"DecodeImage": None}], registry, "T")(encode(img))
    assert out.dtype == np.float32 and np.array_equal(out, img.transpose(2, 0, 1).astype(np.float32))
    out = pipeline_of([{"DecodeImage": None}, {"ToCHWImage": None}], registry, "T")(encode(img))
    assert out.shape == (3, 10, 12)


def test_decoding_with_the_next_op_matches_separate_steps(registry) -> None:
    """Without a reduced-scale decode the fused path is the same computation as decoding then cropping."""
    data = encode(rgb(40, 48))
    pipeline = pipeline_of(TRAIN_OPS[:2], registry, "T")
    assert pipeline._fused
    reseed(11)
    fused = pipeline.sample(data)
    decoded = build(registry, "DecodeImage")(data)
    reseed(11)
    assert np.array_equal(fused, pipeline.ops[1](decoded))


def test_large_jpegs_are_decoded_at_reduced_scale(registry, monkeypatch) -> None:
    from PIL import JpegImagePlugin

    requests = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size, *args, **kwargs):
        requests.append(size)
        return original(self, mode, size, *args, **kwargs)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    rows, cols = np.mgrid[0:400, 0:480]
    smooth = np.stack([rows * 255 // 400, cols * 255 // 480, (rows + cols) * 255 // 880], -1).astype(np.uint8)
    data = encode(smooth, "JPEG", quality=95)
    ops = [{"DecodeImage": None}, {"ResizeImage": {"resize_short": 100}}]
    out = pipeline_of(ops, registry, "T").sample(data)
    assert requests == [(120, 100)] and out.shape == (100, 120, 3)
    full = build(registry, "ResizeImage", resize_short=100)(build(registry, "DecodeImage")(data))
    assert np.abs(out.astype(int) - full.astype(int)).mean() < 1.5  # same picture, decoded at 1/4 scale
    requests.clear()
    exact = pipeline_of([{"DecodeImage": {"draft": False}}, ops[1]], registry, "T").sample(data)
    assert requests == [] and np.array_equal(exact, full)


def test_pipeline_configuration_errors(registry) -> None:
    with pytest.raises(ConfigError, match=r"T\.0: the first transform must decode"):
        pipeline_of([{"ResizeImage": {"size": 8}}], registry, "T")
    with pytest.raises(ConfigError, match=r"T\.1\.NormalizeImage: works on CHW images, but the image is HWC.*order: ''"):
        pipeline_of([{"DecodeImage": None}, {"NormalizeImage": None}], registry, "T")
    with pytest.raises(ConfigError, match=r"T\.2\.RandomErasing: works on HWC .* Move it before ToCHWImage"):
        pipeline_of([{"DecodeImage": None}, {"ToCHWImage": None}, {"RandomErasing": None}], registry, "T")
    decode = pipeline_of([{"DecodeImage": None}], registry, "T")
    chw_only = types.SimpleNamespace(layout="chw")
    specs = [*decode.specs, types.SimpleNamespace(name="ChwOnly", key_path="T.1.ChwOnly")]
    with pytest.raises(ConfigError, match=r"T\.1\.ChwOnly: works on CHW images, but the image is HWC at this point\. "
                                          r"Move it after ToCHWImage"):
        Pipeline([*decode.ops, chw_only], specs, "T")
    with pytest.raises(ComponentArgumentError, match=r"T\.1\.RandomErasing.*EPSILON"):
        pipeline_of([{"DecodeImage": None}, {"RandomErasing": {"EPSILON": 2}}], registry, "T")


def test_pipeline_errors_name_the_op(registry, tmp_path) -> None:
    pipeline = pipeline_of([{"DecodeImage": None}, {"CropImage": {"size": 64}}], registry, "Infer.transforms")
    with pytest.raises(DataError, match=r"^Infer\.transforms\.1\.CropImage: ValueError: cannot crop 64x64"):
        pipeline(encode(rgb(20, 20)))
    (tmp_path / "small.png").write_bytes(encode(rgb(20, 20)))
    with pytest.raises(DataError, match=rf"^{tmp_path / 'small.png'}: Infer\.transforms\.1\.CropImage"):
        pipeline(tmp_path / "small.png")
    (tmp_path / "bad.jpg").write_bytes(b"nonsense")
    with pytest.raises(UnreadableImageError, match=rf"^{tmp_path / 'bad.jpg'}: cannot decode image"):
        pipeline(tmp_path / "bad.jpg")
    unsized = pipeline_of([{"DecodeImage": None}], registry, "T")
    with pytest.raises(DataError, match="differ in shape"):
        unsized.finish([unsized.sample(encode(rgb(8, 8))), unsized.sample(encode(rgb(8, 9)))])
    with pytest.raises(UnreadableImageError, match="image not found: /nonexistent.jpg"):
        unsized("/nonexistent.jpg")


# --- batch transforms -------------------------------------------------------------


def _batch(n: int = 8, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(0).normal(size=(n, 3, size, size)).astype(np.float32)
    return images, np.arange(n, dtype=np.int64) % 4


def test_mixup_is_a_convex_combination(registry) -> None:
    (op,) = batch_ops_of([{"MixupOperator": {"alpha": 1.0}}], registry, "B", class_num=8)
    images, _ = _batch()
    labels = np.arange(8, dtype=np.int64)  # one class per sample: each soft label shows lam
    folded = []
    for _ in range(200):
        mixed, soft = op(images, labels)
        assert mixed.dtype == np.float32 and soft.shape == (8, 8) and soft.dtype == np.float32
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
        assert ((soft > 0).sum(axis=1) <= 2).all()
        folded.append(soft.max(axis=1)[soft.max(axis=1) < 1].mean() if (soft.max(axis=1) < 1).any() else 1.0)
    assert abs(np.mean(folded) - 0.75) < 0.04  # lam ~ Beta(1, 1): E[max(lam, 1 - lam)] = 0.75
    reseed(9)
    mixed, soft = op(images, labels)
    reseed(9)
    rng = generator()
    order = rng.permutation(8)
    lam = float(rng.beta(1.0, 1.0))
    np.testing.assert_allclose(mixed, lam * images + (1 - lam) * images[order], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(soft[0, 0], lam if order[0] != 0 else 1.0, rtol=1e-6)


def test_cutmix_labels_follow_the_pasted_area(registry) -> None:
    (op,) = batch_ops_of([{"CutmixOperator": {"alpha": 1.0}}], registry, "B", class_num=8)
    images = np.arange(8, dtype=np.float32)[:, None, None, None] * np.ones((8, 3, 16, 16), np.float32)
    labels = np.arange(8, dtype=np.int64)
    for _ in range(50):
        mixed, soft = op(images, labels)
        for i in range(8):
            own = (mixed[i, 0] == i).mean()  # the share of sample i's pixels that are its own
            assert soft[i, i] == pytest.approx(own, abs=1e-6)


def test_mixing_needs_labels_and_class_num(registry) -> None:
    (op,) = batch_ops_of([{"MixupOperator": None}], registry, "B", class_num=4)
    images, labels = _batch()
    labels[3] = -1
    with pytest.raises(DataError, match="unlabeled"):
        op(images, labels)
    with pytest.raises(ComponentArgumentError, match=r"B\.0\.MixupOperator: .*class_num is missing.*Arch\.class_num"):
        batch_ops_of([{"MixupOperator": None}], registry, "B")
    multi_hot = (np.random.default_rng(1).random((8, 5)) > 0.5).astype(np.float32)
    _, mixed = op(images, multi_hot)
    assert mixed.shape == (8, 5) and mixed.min() >= 0 and mixed.max() <= 1


def test_op_sampler_frequencies(registry) -> None:
    spec = [{"OpSampler": {"MixupOperator": {"alpha": 0.2, "prob": 0.5}, "CutmixOperator": {"alpha": 1.0, "prob": 0.25}}}]
    (op,) = batch_ops_of(spec, registry, "B", class_num=4)
    images, labels = _batch()
    kinds = {"none": 0, "mixed": 0}
    for _ in range(400):
        _, out = op(images, labels)
        kinds["none" if out.ndim == 1 else "mixed"] += 1
    assert abs(kinds["none"] / 400 - 0.25) < 0.06
    with pytest.raises(ComponentArgumentError, match="add up to 1.5"):
        batch_ops_of([{"OpSampler": {"MixupOperator": {"prob": 0.9}, "CutmixOperator": {"prob": 0.6}}}],
                               registry, "B", class_num=4)
    with pytest.raises(ComponentArgumentError, match="MixupOperator: give its 'prob'"):
        batch_ops_of([{"OpSampler": {"MixupOperator": {"alpha": 1.0}}}], registry, "B", class_num=4)


def test_math_helpers_do_not_eval() -> None:
    from corolla.plugins.transforms._params import number

    assert number("1.0/255.0", "scale") == pytest.approx(1 / 255)
    assert number("0.5", "x") == 0.5 and number(3, "x") == 3.0
    for bad in ("1/0", "2**8", "abs(-1)", True):
        with pytest.raises(ValueError):
            number(bad, "x")
    assert math.isclose(number("1e-3/2", "x"), 5e-4)


def test_eda_fragment_probabilities_are_override_keys(registry) -> None:
    import corolla
    from corolla.config.load import load_config, shipped_configs

    fragment = shipped_configs() / "fragments" / "eda.yaml"
    ops_path = "DataLoader.Train.dataset.transform_ops"
    config = load_config(fragment, [f"{ops_path}.3.TimmAutoAugment.prob=0.5", f"{ops_path}.5.RandomErasing.EPSILON=0.25",
                                    f"{ops_path}.1.RandCropImage.size=32", f"{ops_path}.3.TimmAutoAugment.img_size=32"])
    pipeline = pipeline_of(config["DataLoader"]["Train"]["dataset"]["transform_ops"], registry, ops_path)
    names = [spec.name for spec in pipeline.specs]
    assert names == ["DecodeImage", "RandCropImage", "RandFlipImage", "TimmAutoAugment", "NormalizeImage", "RandomErasing"]
    assert pipeline.ops[3].prob == 0.5 and pipeline.ops[5].EPSILON == 0.25
    assert pipeline.ops[5].sh == pytest.approx(1 / 3) and pipeline.ops[5].mode == "pixel"
    assert pipeline(encode(rgb(48, 40))).shape == (3, 32, 32)
