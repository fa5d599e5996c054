"""Generated image datasets in the layouts corolla reads, offline (see :mod:`corolla.testing.images`).

- :func:`make_list_dataset`: PaddleClas list files ``train_list.txt`` and
  ``val_list.txt`` (``path label``), ``label_list.txt`` (``0 name`` lines, a
  ``class_id_map_file``), and optionally unlabeled images in ``extra_list.txt``
  (a path and no label) plus ``train_extra_list.txt`` (train lines, then extra).
- :func:`make_image_folder`: one sub-folder per class.
- :func:`make_flowers102`: ``jpg/image_NNNNN.jpg`` with ``imagelabels.mat`` and
  ``setid.mat`` as the Oxford flowers102 download has them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import attrs
import numpy as np

from corolla.testing.images import class_looks, image_rng, render_image, save_jpeg

#: stream keys that keep labeled, unlabeled and flowers images independent of each other
_LABELED, _UNLABELED, _FLOWERS = 0, 1, 2


# --- list-file datasets ------------------------------------------------------


@attrs.frozen
class SyntheticDataset:
    """Where a generated list-file dataset lies, and how big it is."""

    root: Path
    train_list: Path
    val_list: Path
    label_list: Path
    extra_list: Path | None
    train_extra_list: Path | None
    class_names: tuple[str, ...]
    num_train: int
    num_val: int
    num_extra: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def make_list_dataset(
    root: str | Path,
    *,
    num_classes: int = 4,
    images_per_class: int = 16,
    image_size: int | tuple[int, int] = 64,
    val_fraction: float = 0.25,
    unlabeled: int = 0,
    seed: int = 0,
    quality: int = 90,
) -> SyntheticDataset:
    """Write a PaddleClas list-file dataset under ``root`` and return its layout.

    ``image_size`` is an int (square) or ``(width, height)``. Of each class's
    ``images_per_class`` images, ``round(val_fraction * n)`` (at least one when
    ``val_fraction > 0``) go to ``val_list.txt``. ``unlabeled`` extra images of
    random classes are listed without labels in ``extra_list.txt`` and appended
    to ``train_extra_list.txt``, as seed 000 does for distillation.
    """
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be >= 1, got {images_per_class}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root)
    looks = class_looks(num_classes)
    num_val = max(1, round(val_fraction * images_per_class)) if val_fraction > 0 else 0
    if num_val >= images_per_class:
        raise ValueError(f"val_fraction={val_fraction} leaves no training image of {images_per_class} per class")

    train_lines: list[str] = []
    val_lines: list[str] = []
    for label, look in enumerate(looks):
        for i in range(images_per_class):
            rel = f"images/{look.name}/{look.name}_{i:04d}.jpg"
            save_jpeg(render_image(look, image_size, image_rng(seed, _LABELED, label, i)), root / rel, quality)
            (val_lines if i < num_val else train_lines).append(f"{rel} {label}")

    extra_lines: list[str] = []
    for i in range(unlabeled):
        rng = image_rng(seed, _UNLABELED, i)
        look = looks[int(rng.integers(num_classes))]
        rel = f"images/unlabeled/unlabeled_{i:04d}.jpg"
        save_jpeg(render_image(look, image_size, rng), root / rel, quality)
        extra_lines.append(rel)

    _write_lines(root / "train_list.txt", train_lines)
    _write_lines(root / "val_list.txt", val_lines)
    write_label_list(root / "label_list.txt", [look.name for look in looks])
    extra_list = train_extra_list = None
    if unlabeled:
        extra_list = _write_lines(root / "extra_list.txt", extra_lines)
        train_extra_list = _write_lines(root / "train_extra_list.txt", train_lines + extra_lines)
    return SyntheticDataset(
        root=root,
        train_list=root / "train_list.txt",
        val_list=root / "val_list.txt",
        label_list=root / "label_list.txt",
        extra_list=extra_list,
        train_extra_list=train_extra_list,
        class_names=tuple(look.name for look in looks),
        num_train=len(train_lines),
        num_val=len(val_lines),
        num_extra=len(extra_lines),
    )


def make_image_folder(
    root: str | Path,
    *,
    num_classes: int = 4,
    images_per_class: int = 8,
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    quality: int = 90,
) -> list[str]:
    """Write ``root/<class name>/<n>.jpg`` (one sub-folder per class); return the class names."""
    root = Path(root)
    looks = class_looks(num_classes)
    for label, look in enumerate(looks):
        for i in range(images_per_class):
            image = render_image(look, image_size, image_rng(seed, _LABELED, label, i))
            save_jpeg(image, root / look.name / f"{i:04d}.jpg", quality)
    return [look.name for look in looks]


def write_label_list(path: Path, names: Sequence[str]) -> Path:
    """Write a class-id map (``0 name`` per line), as PaddleClas's ``class_id_map_file``."""
    return _write_lines(path, [f"{i} {name}" for i, name in enumerate(names)])


def _write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


# --- flowers102 layout -------------------------------------------------------


@attrs.frozen
class Flowers102Files:
    """A flowers102-like download: the 1-based ids of each split and every image's 1-based label."""

    root: Path
    labels: np.ndarray  # [num_images], 1-based class of image id i+1
    trnid: np.ndarray
    valid: np.ndarray
    tstid: np.ndarray


def make_flowers102(
    root: str | Path,
    *,
    num_classes: int = 3,
    train_per_class: int = 2,
    val_per_class: int = 2,
    test_per_class: int = 3,
    image_size: int | tuple[int, int] = 48,
    seed: int = 0,
) -> Flowers102Files:
    """Write ``jpg/image_NNNNN.jpg``, ``imagelabels.mat`` and ``setid.mat`` like the Oxford download.

    As in the real files, labels and split ids are 1-based row vectors
    (``labels`` of shape ``[1, N]``; ``trnid``/``valid``/``tstid`` of shape
    ``[1, n]``) and image ids are shuffled across classes.
    """
    from scipy.io import savemat  # only this helper needs scipy

    root = Path(root)
    per_class = train_per_class + val_per_class + test_per_class
    total = num_classes * per_class
    rng = np.random.default_rng([seed, _FLOWERS])
    ids = rng.permutation(total) + 1  # image ids, 1-based, in class-major order
    labels = np.empty(total, dtype=np.uint8)
    splits: dict[str, list[int]] = {"trnid": [], "valid": [], "tstid": []}
    looks = class_looks(num_classes)
    for c in range(num_classes):
        block = ids[c * per_class:(c + 1) * per_class]
        labels[block - 1] = c + 1
        splits["trnid"] += block[:train_per_class].tolist()
        splits["valid"] += block[train_per_class:train_per_class + val_per_class].tolist()
        splits["tstid"] += block[train_per_class + val_per_class:].tolist()
        for image_id in block:
            image = render_image(looks[c], image_size, image_rng(seed, _FLOWERS, int(image_id)))
            save_jpeg(image, root / "jpg" / f"image_{image_id:05d}.jpg", 90)
    split_arrays = {k: np.array(sorted(v), dtype=np.uint16) for k, v in splits.items()}
    savemat(root / "imagelabels.mat", {"labels": labels[None, :]})
    savemat(root / "setid.mat", {k: v[None, :] for k, v in split_arrays.items()})
    return Flowers102Files(root=root, labels=labels, **split_arrays)
