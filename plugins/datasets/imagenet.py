"""ImageNetDataset: a PaddleClas list file of ``path label`` lines under an image root."""
from __future__ import annotations

from corolla.api import Pipeline
from corolla.plugins.datasets.base import UNLABELED, ImageDataset, existing_root
from corolla.plugins.datasets.lists import class_label, parse_labels, read_list


class ImageNetDataset(ImageDataset):
    """Samples from ``cls_label_path``: one ``relative/path label`` per line under ``image_root``.

    A line with no label, or the label ``-1``, is an unlabeled sample (label
    -1), as in distillation lists with extra images. ``delimiter`` separates
    path and label (default: whitespace; use ``"\\t"`` for paths with spaces).
    ``relabel`` maps the labels present, in increasing order, to 0..K-1.
    """

    def __init__(self, image_root: str, cls_label_path: str, transform_ops: Pipeline | None = None,
                 delimiter: str | None = None, relabel: bool = False) -> None:
        what = f"ImageNetDataset({cls_label_path})"
        lines = read_list(cls_label_path, existing_root(image_root, what), delimiter, what=what)
        labels = parse_labels(lines, class_label, "an integer label >= 0 (or -1 / nothing for unlabeled)")
        if relabel:
            mapping = {old: new for new, old in enumerate(sorted(set(labels) - {UNLABELED}))}
            labels = [mapping.get(label, UNLABELED) for label in labels]
        super().__init__([line.path for line in lines], labels, [line.origin for line in lines],
                         transform_ops, cls_label_path)
