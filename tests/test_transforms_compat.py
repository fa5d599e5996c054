"""The PaddleClas transforms and dataset added for its configs (Padv2, RandomCropImage,
CropImageAtRatio, RandAugmentV2/V3, PCALighting, BlurImage, RandomRot90, CustomLabelDataset
and option compatibility), against hand-worked results; and the PULC configs whose labels a
transform makes, one training step each."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from corolla import ComponentArgumentError, load_registry
from corolla.config.load import load_config
from corolla.config.planner import read_plan
from corolla.data.pipeline import LabeledImage
from corolla.data.randomness import reseed
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset
from engine_support import pipeline_of

PADDLECLAS_CONFIGS = Path(__file__).resolve().parents[2] / "shared" / "paddleclas-2.6" / "configs"
needs_configs = pytest.mark.skipif(not PADDLECLAS_CONFIGS.is_dir(), reason=f"PaddleClas 2.6 configs not found at {PADDLECLAS_CONFIGS}")


@pytest.fixture(scope="module")
def registry():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_registry()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    reseed(2024)


def build(registry, name: str, **params):
    return registry.build("transform", name, params)


def rgb(h: int = 6, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- Padv2, RandomCropImage, CropImageAtRatio -------------------------------------------------


def test_padv2_places_the_image_by_mode(registry):
    img = rgb(2, 3)
    for mode, (x, y) in {0: (0, 0), 1: (1, 1), 2: (2, 2)}.items():
        out = build(registry, "Padv2", size=[5, 4], pad_mode=mode, fill_value=[10, 20, 30])(img)
        assert out.shape == (4, 5, 3) and out.dtype == np.uint8
        assert np.array_equal(out[y:y + 2, x:x + 3], img)
        mask = np.ones((4, 5), bool)
        mask[y:y + 2, x:x + 3] = False
        assert (out[mask] == [10, 20, 30]).all()
    out = build(registry, "Padv2", size=[5, 4], pad_mode=-1, offsets=[2, 0])(img)
    assert np.array_equal(out[0:2, 2:5], img) and (out[3] == 128).all()  # the default fill 127.5 rounds to 128
    # without a size: the next multiples of size_divisor
    assert build(registry, "Padv2", size_divisor=4)(rgb(5, 9)).shape == (8, 12, 3)
    with pytest.raises(ValueError, match=r"a 8x6 image at \(0, 0\) does not fit on the 5x4 canvas"):
        build(registry, "Padv2", size=[5, 4])(rgb())
    with pytest.raises(ComponentArgumentError, match=r"offsets: pad_mode -1 needs \[x, y\]"):
        build(registry, "Padv2", size=[5, 4], pad_mode=-1)


def test_random_crop_image_takes_every_window_uniformly(registry):
    img = np.arange(4 * 5).reshape(4, 5, 1).repeat(3, axis=2).astype(np.uint8)
    op = build(registry, "RandomCropImage", size=[3, 2])  # [w, h]
    corners = []
    for _ in range(600):
        out = op(img)
        assert out.shape == (2, 3, 3)
        top, left = divmod(int(out[0, 0, 0]), 5)
        assert np.array_equal(out, img[top:top + 2, left:left + 3])
        corners.append((top, left))
    counts = np.bincount([t * 3 + l for t, l in corners], minlength=9)  # 3 x 3 possible corners
    assert counts.min() > 600 / 9 * 0.6
    with pytest.raises(ValueError, match="cannot crop 3x2 from a 2x2 image"):
        op(rgb(2, 2))


def test_crop_image_at_ratio_is_efficientnetv2_eval_crop(registry):
    img = rgb(60, 100, seed=3)
    out = build(registry, "CropImageAtRatio", size=32, pad=32, interpolation="bilinear")(img)
    # ratio 32/64: a centred 30x30 square of the 60-pixel short side, resized to 32x32
    expected = np.asarray(Image.fromarray(img).resize((32, 32), Image.BILINEAR, box=(35, 15, 65, 45)))
    assert np.array_equal(out, expected)


# --- options of existing transforms -----------------------------------------------------------------


def test_randcrop_progress_size_and_timm_autoaugment_without_config(registry):
    assert build(registry, "RandCropImage", size=24, progress_size=[24, 32])(rgb(40, 48)).shape == (24, 24, 3)
    with pytest.raises(ComponentArgumentError, match="progress_size"):
        build(registry, "RandCropImage", size=24, progress_size=[0])
    img = rgb(32, 32)
    assert build(registry, "TimmAutoAugment", config_str=None)(img) is img


# --- RandAugmentV2 / V3 -------------------------------------------------------------------------------


def test_randaugment_variants_map_the_magnitude_as_paddleclas(registry):
    image = Image.fromarray(rgb(16, 16, seed=5))
    v3 = build(registry, "RandAugmentV3", num_layers=2, magnitude=5)
    # l = 0.5: posterize to 8 - int(2) = 6 bits, solarize above 255 * 0.5
    assert np.array_equal(np.asarray(v3.ops["posterize"](image)), np.asarray(ImageOps.posterize(image, 6)))
    assert np.array_equal(np.asarray(v3.ops["solarize"](image)), np.asarray(ImageOps.solarize(image, 127.5)))
    assert len(v3.ops) == 14
    v2 = build(registry, "RandAugmentV2", magnitude=15, progress_magnitude=[5, 15])  # EfficientNetV2 goes past 10
    assert np.array_equal(np.asarray(v2.ops["posterize"](image)), np.asarray(ImageOps.posterize(image, 6)))
    cut = np.asarray(build(registry, "RandAugmentV2", magnitude=1, fillcolor=[7, 7, 7]).ops["cutout"](image))
    assert 0 < (cut == 7).all(axis=2).sum() <= 64  # a square of half-side int(40 * 0.1) = 4, clipped at the borders
    assert len(v2.ops) == 16
    for name in ("RandAugmentV2", "RandAugmentV3"):
        out = build(registry, name)(rgb(16, 16))
        assert out.shape == (16, 16, 3) and out.dtype == np.uint8
        assert np.array_equal(build(registry, name, num_layers=0)(rgb(16, 16)), rgb(16, 16))
    with pytest.raises(ComponentArgumentError, match=r"magnitude: expected a number in \[0, 10\]"):
        build(registry, "RandAugmentV3", magnitude=15)


# --- PCALighting --------------------------------------------------------------------------------------


def test_pca_lighting_shift_by_hand(registry):
    op = build(registry, "PCALighting")
    # a draw of (1, 0, 0): 255 * 0.2175 times the first eigenvector
    np.testing.assert_allclose(op.shift(np.array([1.0, 0.0, 0.0])), 255 * 0.2175 * np.array([-0.5675, -0.5808, -0.5836]))
    img = np.full((2, 2, 3), 100, np.uint8)
    reseed(9)
    out = op(img)
    reseed(9)
    from corolla.data.randomness import generator
    expected = np.clip(np.rint(100 + op.shift(generator().normal(0.0, 0.1, size=3))), 0, 255)
    assert np.array_equal(out, np.broadcast_to(expected, img.shape)) and out.dtype == np.uint8
    assert build(registry, "PCALighting", alphastd=0)(img) is img


# --- transforms that make labels ---------------------------------------------------------------------------


def test_blur_image_labels_what_it_blurs(registry):
    img = rgb(20, 20, seed=1)
    kept = build(registry, "BlurImage", ratio=0.0)(img)
    assert isinstance(kept, LabeledImage) and kept.image is img and kept.labels == {"blur_image": 0}
    blur = build(registry, "BlurImage", ratio=1.0)
    for _ in range(6):  # both kinds of blur come up
        out = blur(img)
        assert out.labels == {"blur_image": 1} and out.image.shape == img.shape and out.image.dtype == np.uint8
        assert np.abs(out.image.astype(int) - img).mean() > 5
    from corolla.plugins.transforms.labeling import gaussian_kernel
    # OpenCV's sigma for a 5-tap kernel: 0.3 * (2 - 1) + 0.8 = 1.1
    taps = np.exp(-np.arange(-2, 3) ** 2 / (2 * 1.1 ** 2))
    np.testing.assert_allclose(gaussian_kernel(5), taps / taps.sum(), rtol=1e-6)


def test_random_rot90_labels_the_quarter_turns(registry):
    img = rgb(4, 6)
    op = build(registry, "RandomRot90")
    seen = set()
    for _ in range(40):
        out = op(img)
        turns = out.labels["random_rot90_orientation"]
        assert np.array_equal(out.image, np.rot90(img, turns))
        seen.add(turns)
    assert seen == {0, 1, 2, 3}


def test_custom_label_dataset_takes_its_label_from_a_transform(tmp_path, registry):
    data = make_list_dataset(tmp_path, num_classes=1, images_per_class=3, image_size=24, val_fraction=0)
    listing = tmp_path / "samples.txt"
    listing.write_text("".join(line.split()[0] + "\n" for line in data.train_list.read_text().splitlines()))
    ops = [{"DecodeImage": None}, {"ResizeImage": {"size": 16}}, {"BlurImage": {"ratio": 1.0}}]
    params = {"image_root": str(tmp_path), "sample_list_path": str(listing), "label_key": "blur_image"}
    dataset = registry.build("dataset", "CustomLabelDataset", {**params, "transform_ops": pipeline_of(ops, registry)})
    assert len(dataset) == 3 and all(dataset[i][1] == 1 for i in range(3)) and dataset[0][0].shape == (16, 16, 3)
    unlabeled = registry.build("dataset", "CustomLabelDataset",
                               {**params, "label_key": None, "transform_ops": pipeline_of(ops, registry)})
    assert unlabeled[0][1] == -1
    with pytest.raises(ComponentArgumentError, match=r"label_key: no op of transform_ops makes the label 'orientation' \(they make"):
        registry.build("dataset", "CustomLabelDataset",
                       {**params, "label_key": "orientation", "transform_ops": pipeline_of(ops, registry)})


# --- PaddleClas's PULC configs whose labels a transform makes ---------------------------------------------


@needs_configs
@pytest.mark.parametrize("name, resize", [("PULC/clarity_assessment/PPLCNet_x1_0.yaml", 2),
                                          ("PULC/image_orientation/PPLCNet_x1_0.yaml", 1)])
def test_pulc_custom_label_configs_train_a_step(name, resize, tmp_path, registry):
    data = make_list_dataset(tmp_path / "data", num_classes=2, images_per_class=6, image_size=40, val_fraction=0.34, seed=4)
    samples = tmp_path / "samples.txt"
    samples.write_text("".join(line.split()[0] + "\n" for line in data.train_list.read_text().splitlines()))
    size_key = "ResizeImage" if resize == 2 else "RandCropImage"
    overrides = [
        "Global.device=cpu", "Global.epochs=1", "Global.eval_during_train=False", f"Global.output_dir={tmp_path / 'out'}",
        "Global.image_shape=[3,32,32]", "Arch.pretrained=False",
        f"DataLoader.Train.dataset.image_root={data.root}", f"DataLoader.Train.dataset.sample_list_path={samples}",
        f"DataLoader.Eval.dataset.image_root={data.root}", f"DataLoader.Eval.dataset.cls_label_path={data.val_list}",
        f"DataLoader.Train.dataset.transform_ops.{resize}.{size_key}.size=32",
        "DataLoader.Train.sampler.batch_size=8", "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0",
    ]
    if "orientation" in name:
        overrides.append("DataLoader.Train.dataset.transform_ops.2.TimmAutoAugment.img_size=32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        config = load_config(PADDLECLAS_CONFIGS / name, overrides)
    config["Global"]["callbacks"] = [{"ConsoleLogger": None}]  # no curve plots: seconds of matplotlib per run
    run = train(read_plan(config, registry), distributed=False)
    assert run.global_step == 1 and math.isfinite(run.model.parameters()[0].numpy().sum())
