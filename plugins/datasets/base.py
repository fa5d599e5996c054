"""What every built-in dataset shares: images with labels, read and preprocessed on access,
and a fast check of its files (no decoding) with a summary."""
from __future__ import annotations

import os
from typing import Any, Sequence

import attrs
import numpy as np

from corolla.api import CorollaError, DataError, Pipeline, read_image_bytes

#: the label of a sample without one (an unlabeled line); losses needing ground truth skip it
UNLABELED = -1


@attrs.frozen
class DataSummary:
    """The result of checking a dataset's files."""

    source: str
    images: int
    unlabeled: int
    classes: tuple[int, ...]
    missing: tuple[str, ...]

    def describe(self) -> str:
        parts = [f"{self.source}: {self.images} images"]
        if self.unlabeled:
            parts.append(f"{self.unlabeled} unlabeled")
        if self.classes:
            parts.append(f"{len(self.classes)} classes (labels {self.classes[0]}..{self.classes[-1]})")
        parts.append(f"{len(self.missing)} missing" if self.missing else "all files present")
        return ", ".join(parts)


class ImageDataset:
    """Images (paths) with labels; ``dataset[i]`` is ``(sample, label)``.

    ``sample`` is what ``transform_ops.sample`` makes of the file's bytes
    (uint8 HWC for the usual ops; the loader finishes whole batches), or the
    bytes themselves without ``transform_ops``. ``origins[i]`` says where
    sample ``i`` was listed (``list.txt:12``), for error messages.
    """

    def __init__(self, images: Sequence[str], labels: Sequence[Any], origins: Sequence[str],
                 transform_ops: Pipeline | None, source: str) -> None:
        self.images = list(images)
        self.labels = list(labels)
        self.origins = list(origins)
        self.transform_ops = transform_ops
        self.source = source

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path = self.images[index]
        try:
            data = read_image_bytes(path)
        except CorollaError as exc:
            raise type(exc)(f"{self.origins[index]}: {exc}") from None
        try:
            return self.sample_and_label(index, data)
        except CorollaError as exc:
            raise type(exc)(f"{self.origins[index]}: {path}: {exc}") from None

    def sample_and_label(self, index: int, data: bytes) -> tuple[Any, Any]:
        """What ``transform_ops`` make of sample ``index``'s bytes (the bytes without them), and its label."""
        return (self.transform_ops.sample(data) if self.transform_ops is not None else data), self.label(index)

    def label(self, index: int) -> Any:
        return np.int64(self.labels[index])

    @property
    def class_num(self) -> int:
        """The number of distinct labels (PaddleClas's ``class_num`` property), unlabeled excluded."""
        return len({label for label in self.labels if label != UNLABELED})

    def check(self, class_num: int | None = None) -> DataSummary:
        """Check that every file exists (``os.stat``, no decoding) and labels fit ``class_num``."""
        missing = tuple(f"{origin}: {path}" for path, origin in zip(self.images, self.origins) if not os.path.isfile(path))
        labels = [label for label in self.labels if label != UNLABELED]
        if class_num is not None:
            for label, origin in zip(self.labels, self.origins):
                if label != UNLABELED and not 0 <= label < class_num:
                    raise DataError(f"{origin}: label {label} is out of range for class_num={class_num} "
                                    f"(labels are 0..{class_num - 1}, or -1 for unlabeled)")
        return DataSummary(self.source, len(self.images), len(self.labels) - len(labels),
                           tuple(sorted(set(labels))), missing)


def existing_root(image_root: str, what: str) -> str:
    """``image_root`` if it is a directory, else a DataError naming ``what`` set it."""
    if not os.path.isdir(image_root):
        raise DataError(f"{what}: image_root {image_root!r} is not a directory")
    return image_root
