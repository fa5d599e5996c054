"""corolla.testing.images: generated datasets are well-formed, deterministic and learnable."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from corolla.testing.datasets import make_flowers102, make_image_folder, make_list_dataset
from corolla.testing.images import class_looks


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_list_dataset_layout(tmp_path: Path) -> None:
    data = make_list_dataset(tmp_path, num_classes=3, images_per_class=8, image_size=(40, 30), unlabeled=5)
    assert (data.num_train, data.num_val, data.num_extra) == (18, 6, 5)
    train, val = _lines(data.train_list), _lines(data.val_list)
    assert len(train) == 18 and len(val) == 6
    for line in train + val:
        rel, label = line.split(" ")
        image = Image.open(tmp_path / rel)
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (40, 30)
        assert int(label) in (0, 1, 2)
    assert sorted(int(line.split()[1]) for line in val) == [0, 0, 1, 1, 2, 2]
    assert _lines(data.label_list) == [f"{i} {name}" for i, name in enumerate(data.class_names)]
    extra = _lines(data.extra_list)
    assert len(extra) == 5 and all(len(line.split()) == 1 and (tmp_path / line).is_file() for line in extra)
    assert _lines(data.train_extra_list) == train + extra


def test_no_unlabeled_means_no_extra_files(tmp_path: Path) -> None:
    data = make_list_dataset(tmp_path, num_classes=2, images_per_class=2)
    assert data.extra_list is None and not (tmp_path / "extra_list.txt").exists()


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = make_list_dataset(tmp_path / "a", num_classes=2, images_per_class=3, seed=7)
    b = make_list_dataset(tmp_path / "b", num_classes=2, images_per_class=3, seed=7)
    c = make_list_dataset(tmp_path / "c", num_classes=2, images_per_class=3, seed=8)
    rel = _lines(a.train_list)[0].split()[0]
    assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes()
    assert (a.root / rel).read_bytes() != (c.root / rel).read_bytes()


def test_images_do_not_depend_on_dataset_size(tmp_path: Path) -> None:
    small = make_image_folder(tmp_path / "s", num_classes=2, images_per_class=2, seed=3)
    large = make_image_folder(tmp_path / "l", num_classes=5, images_per_class=4, seed=3)
    assert large[:2] == small
    name = small[1]
    assert (tmp_path / "s" / name / "0001.jpg").read_bytes() == (tmp_path / "l" / name / "0001.jpg").read_bytes()


def test_classes_are_learnable(tmp_path: Path) -> None:
    """A nearest-class-mean classifier on 8x8 thumbnails beats chance by far."""
    data = make_list_dataset(tmp_path, num_classes=6, images_per_class=30, image_size=48, val_fraction=0.3)

    def features(list_path: Path) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for line in _lines(list_path):
            rel, label = line.split()
            thumb = Image.open(tmp_path / rel).convert("HSV").resize((8, 8), Image.BILINEAR)
            hsv = np.asarray(thumb, dtype=np.float32) / 255.0
            vivid = hsv[..., 1] > 0.5  # backgrounds are muted, objects vivid
            hue_hist = np.histogram(hsv[..., 0][vivid], bins=12, range=(0, 1))[0]
            xs.append(hue_hist / 64.0)
            ys.append(int(label))
        return np.stack(xs), np.array(ys)

    x_train, y_train = features(data.train_list)
    x_val, y_val = features(data.val_list)
    means = np.stack([x_train[y_train == c].mean(0) for c in range(6)])
    predicted = np.argmin(((x_val[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    accuracy = (predicted == y_val).mean()
    assert accuracy >= 0.6, accuracy  # chance is 1/6


def test_class_looks_are_distinct() -> None:
    looks = class_looks(24)
    assert len({(look.shape, look.texture) for look in looks}) == 24
    assert len({look.name for look in looks}) == 24
    with pytest.raises(ValueError, match="num_classes"):
        class_looks(0)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        make_list_dataset(tmp_path, val_fraction=1.0)
    with pytest.raises(ValueError, match="no training image"):
        make_list_dataset(tmp_path, images_per_class=1, val_fraction=0.5)


def test_flowers102_files(tmp_path: Path) -> None:
    files = make_flowers102(tmp_path, num_classes=3, train_per_class=2, val_per_class=1, test_per_class=4)
    labels = loadmat(tmp_path / "imagelabels.mat")["labels"]
    setid = loadmat(tmp_path / "setid.mat")
    assert labels.shape == (1, 21) and sorted(set(labels[0].tolist())) == [1, 2, 3]
    assert setid["trnid"].shape == (1, 6) and setid["valid"].shape == (1, 3) and setid["tstid"].shape == (1, 12)
    every_id = np.concatenate([setid[k][0] for k in ("trnid", "valid", "tstid")])
    assert sorted(every_id.tolist()) == list(range(1, 22))
    for image_id in every_id:
        assert (tmp_path / "jpg" / f"image_{image_id:05d}.jpg").is_file()
    # each split holds the asked number of images of every class
    for key, per_class in (("trnid", 2), ("valid", 1), ("tstid", 4)):
        counts = np.bincount(labels[0][setid[key][0] - 1], minlength=4)[1:]
        assert counts.tolist() == [per_class] * 3
    assert np.array_equal(files.labels, labels[0])
