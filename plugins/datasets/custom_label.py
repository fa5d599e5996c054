"""CustomLabelDataset: images whose label a transform makes (PULC's clarity and orientation tasks)."""
from __future__ import annotations

from typing import Any

import numpy as np

from corolla.api import DataError, Pipeline
from corolla.plugins.datasets.base import UNLABELED, DataSummary, ImageDataset, existing_root
from corolla.plugins.datasets.lists import read_list


class CustomLabelDataset(ImageDataset):
    """The images listed in ``sample_list_path`` (one ``relative/path`` per line under
    ``image_root``; a second field, split at ``delimiter``, is ignored), labeled by a
    transform: the label is the value that an op of ``transform_ops`` makes under
    ``label_key`` (``BlurImage`` makes ``blur_image``, ``RandomRot90``
    ``random_rot90_orientation``). Without ``label_key`` every sample is unlabeled (-1).
    """

    def __init__(self, image_root: str, sample_list_path: str, transform_ops: Pipeline | None = None,
                 label_key: str | None = None, delimiter: str | None = None) -> None:
        what = f"CustomLabelDataset({sample_list_path})"
        if label_key is not None:
            made = transform_ops.label_keys if transform_ops is not None else set()
            if label_key not in made:
                raise ValueError(f"label_key: no op of transform_ops makes the label {label_key!r} "
                                 f"(they make: {', '.join(sorted(made)) or 'no labels'}); add BlurImage or RandomRot90")
        lines = read_list(sample_list_path, existing_root(image_root, what), delimiter, what=what)
        super().__init__([line.path for line in lines], [UNLABELED] * len(lines), [line.origin for line in lines],
                         transform_ops, sample_list_path)
        self.label_key = label_key

    def sample_and_label(self, index: int, data: bytes) -> tuple[Any, Any]:
        if self.label_key is None or self.transform_ops is None:
            return super().sample_and_label(index, data)
        sample, labels = self.transform_ops.labeled_sample(data)
        if self.label_key not in labels:
            raise DataError(f"no op made the label {self.label_key!r} for this image")
        return sample, np.int64(labels[self.label_key])

    def check(self, class_num: int | None = None) -> DataSummary:
        """The files' check; the labels are made while loading, so none are counted here."""
        summary = super().check()
        return DataSummary(summary.source, summary.images, 0 if self.label_key else summary.images, (), summary.missing)
