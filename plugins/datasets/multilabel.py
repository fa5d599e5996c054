"""MultiLabelDataset: ``path<TAB>0,1,0`` lines, multi-hot float32 labels."""
from __future__ import annotations

import numpy as np

from corolla.api import DataError, Pipeline
from corolla.plugins.datasets.base import DataSummary, ImageDataset, existing_root
from corolla.plugins.datasets.lists import multi_hot, parse_labels, read_list


class MultiLabelDataset(ImageDataset):
    """Samples from ``cls_label_path``: ``relative/path<TAB>0,1,0`` per line; the label is a
    float32 vector of the flags (1 present, 0 absent, -1 unknown), the same length on every
    line.

    With ``label_ratio`` the label is ``[2, C]``: the flags, then each class's share of
    positives among the lines that know it (what ``weight_ratio`` of the multi-label losses
    weighs classes by): PaddleClas's mean of the flags over the list when none is unknown.
    """

    def __init__(self, image_root: str, cls_label_path: str, transform_ops: Pipeline | None = None,
                 delimiter: str = "\t", label_ratio: bool = False) -> None:
        what = f"MultiLabelDataset({cls_label_path})"
        lines = read_list(cls_label_path, existing_root(image_root, what), delimiter, what=what)
        labels = parse_labels(lines, multi_hot, "comma-separated 0/1 flags such as 0,1,0")
        lengths = {len(label) for label in labels}
        if len(lengths) > 1:
            first = next(line for line, label in zip(lines, labels) if len(label) != len(labels[0]))
            raise DataError(f"{first.origin}: expected {len(labels[0])} flags as on the first line, "
                            f"found {first.label!r}")
        super().__init__([line.path for line in lines], labels, [line.origin for line in lines],
                         transform_ops, cls_label_path)
        self.label_ratio = positive_shares(np.asarray(labels)) if label_ratio else None

    def label(self, index: int) -> np.ndarray:
        flags = np.asarray(self.labels[index], dtype=np.float32)
        return flags if self.label_ratio is None else np.stack([flags, self.label_ratio])

    @property
    def class_num(self) -> int:
        return len(self.labels[0])

    def check(self, class_num: int | None = None) -> DataSummary:
        if class_num is not None and class_num != self.class_num:
            raise DataError(f"{self.origins[0]}: lines have {self.class_num} label flags, but class_num={class_num}")
        summary = super().check()
        return DataSummary(summary.source, summary.images, 0, tuple(range(self.class_num)), summary.missing)


def positive_shares(flags: np.ndarray) -> np.ndarray:
    """Per class, positives / known flags (0 for a class no line knows), float32."""
    known = (flags >= 0).sum(axis=0)
    return ((flags == 1).sum(axis=0) / np.maximum(known, 1)).astype(np.float32)
