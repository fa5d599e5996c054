"""Your own images: a class-per-folder tree split into train and validation list files.

``corolla data split FOLDER`` makes, in ``FOLDER`` (or ``out``), what the list-file datasets
read: ``train_list.txt`` and ``val_list.txt`` (``class/image.jpg label``, paths relative to
``FOLDER``) and ``label_list.txt`` (``0 name``, the class map that ``infer``, ``export`` and
``predict`` use). The split is stratified (each class gives ``val_fraction`` of its images,
at least one when it has two) and seeded per class, so adding a class or images to one
class leaves the other classes' splits as they were. Files already there with other contents
(another seed, more images, your edits) are kept and the split refused: a new split could put
images trained on earlier into validation.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Iterable

import attrs
import numpy as np

from corolla.data.atomic import write_new_files
from corolla.plugin.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: what to do when ``data split`` keeps earlier files rather than replace them
SPLIT_ELSEWHERE = ("Move or delete them to split anew (a new split can put images trained on before into "
                   "validation), or write the new files to another folder with --out FOLDER")


@attrs.frozen
class FolderSplit:
    """Where a split's files are, and what went where."""

    root: Path
    train_list: Path
    val_list: Path
    label_list: Path
    class_names: tuple[str, ...]
    #: per class, images in train and in val
    train_counts: tuple[int, ...]
    val_counts: tuple[int, ...]
    #: " ", or a tab when a path has spaces (then the dataset needs ``delimiter: "\t"``)
    delimiter: str
    #: images directly in the root, in no class folder (left out)
    loose_images: int

    def describe(self) -> str:
        one = [name for name, count in zip(self.class_names, self.val_counts) if count == 0]
        text = (f"{len(self.class_names)} classes, {sum(self.train_counts)} train and {sum(self.val_counts)} "
                f"validation images")
        if one:
            text += f"; classes with one image, in train only: {', '.join(one)}"
        if self.loose_images:
            text += f"; {self.loose_images} images directly in {self.root} are in no class folder and left out"
        return text


def split_folder(root: str | os.PathLike[str], *, val_fraction: float = 0.2, seed: int = 0,
                 out: str | os.PathLike[str] | None = None) -> FolderSplit:
    """Split ``root/<class>/**/<image>`` into list files written to ``out`` (default ``root``)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data split: {root} is not a folder; expected one sub-folder of images per class")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"data split: --val-fraction must be between 0 and 1, found {val_fraction}")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DataError(f"data split: {root} has no class sub-folders; expected {root}/<class name>/<images>")
    if len(classes) == 1:
        raise DataError(f"data split: {root} has one class sub-folder, {classes[0]}, and a classifier needs two or more; "
                        f"is {root} a class folder? Give the folder that holds one sub-folder per class")
    train: list[str] = []
    val: list[str] = []
    train_counts, val_counts = [], []
    for label, name in enumerate(classes):
        images = _images(root, root / name)
        if not images:
            raise DataError(f"data split: the class folder {root / name} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        order = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))]).permutation(len(images))
        count = min(max(1, round(val_fraction * len(images))), len(images) - 1)
        chosen = {int(i) for i in order[:count]}
        val += [f"{path} {label}" for i, path in enumerate(images) if i in chosen]
        train += [f"{path} {label}" for i, path in enumerate(images) if i not in chosen]
        train_counts.append(len(images) - count)
        val_counts.append(count)
    delimiter = "\t" if any(" " in line.rsplit(" ", 1)[0] for line in train + val) else " "
    folder = Path(out) if out is not None else root
    train_list, val_list, label_list = folder / "train_list.txt", folder / "val_list.txt", folder / "label_list.txt"
    write_new_files({
        train_list: _lines_text(_delimited(line, delimiter) for line in train),
        val_list: _lines_text(_delimited(line, delimiter) for line in val),
        label_list: _lines_text(f"{i} {name}" for i, name in enumerate(classes)),
    }, writer="data split", instead=SPLIT_ELSEWHERE)
    loose = sum(1 for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return FolderSplit(root, train_list, val_list, label_list, tuple(classes),
                       tuple(train_counts), tuple(val_counts), delimiter, loose)


def _images(root: Path, folder: Path) -> list[str]:
    """The images under ``folder`` (sub-folders too, hidden ones aside), relative to ``root``, sorted."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not any(p.startswith(".") for p in relative.parts):
            found.append(relative.as_posix())
    if unlistable := [name for name in found if "\t" in name or "\n" in name or "\r" in name]:
        raise DataError(f"data split: {len(unlistable)} image path(s) hold a tab or a line break, which no list file can "
                        f"hold: {', '.join(map(repr, unlistable[:3]))}; rename them")
    return sorted(found)


def _delimited(line: str, delimiter: str) -> str:
    path, label = line.rsplit(" ", 1)
    return f"{path}{delimiter}{label}"


def _lines_text(lines: Iterable[str]) -> str:
    return "".join(f"{line}\n" for line in lines)
