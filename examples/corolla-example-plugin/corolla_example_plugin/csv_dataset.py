"""CsvDataset: images listed in a CSV file with a header row ``path,label``."""
from __future__ import annotations

import csv
import os
from typing import Any

import numpy as np

from corolla.api import DataError, Pipeline, read_image_bytes


class CsvDataset:
    """Rows ``path,label`` (paths relative to ``image_root``; an empty label is an unlabeled
    sample, -1). ``dataset[i]`` is ``(transform_ops.sample(bytes), label)``."""

    def __init__(self, image_root: str, csv_file: str, transform_ops: Pipeline) -> None:
        try:
            with open(csv_file, newline="", encoding="utf-8") as stream:
                rows = list(csv.DictReader(stream))
        except OSError as exc:
            raise DataError(f"CsvDataset: cannot read csv_file {csv_file}: {exc.strerror or exc}") from None
        if not rows or not {"path", "label"} <= set(rows[0]):
            raise DataError(f"CsvDataset: {csv_file} needs a header 'path,label' and at least one row")
        self.images = [os.path.join(image_root, row["path"]) for row in rows]
        try:
            self.labels = [int(row["label"]) if row["label"].strip() else -1 for row in rows]
        except ValueError as exc:
            raise DataError(f"CsvDataset: {csv_file}: a label is not an integer: {exc}") from None
        self.transform_ops = transform_ops

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, np.int64]:
        return self.transform_ops.sample(read_image_bytes(self.images[index])), np.int64(self.labels[index])
