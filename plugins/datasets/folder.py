"""ImageFolderDataset: one sub-folder per class; writes the class-id map it used."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from corolla.api import DataError, Pipeline
from corolla.plugins.datasets.base import ImageDataset, existing_root

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageFolderDataset(ImageDataset):
    """Images in ``image_root/<class name>/``; classes are the sub-folders in sorted order
    (label 0 is the first). The class-id map (``0 name`` lines, PaddleClas's
    ``class_id_map_file`` format) is written to ``class_id_map_file``, by
    default ``image_root/label_list.txt``, so infer and predict can name classes.
    """

    def __init__(self, image_root: str, transform_ops: Pipeline | None = None, class_id_map_file: str | None = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS) -> None:
        what = f"ImageFolderDataset({image_root})"
        root = Path(existing_root(image_root, what))
        wanted = tuple(e.lower() for e in extensions)
        classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
        if not classes:
            raise DataError(f"{what}: no class sub-folders in {root}")
        images, labels = [], []
        for label, name in enumerate(classes):
            files = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in wanted)
            if not files:
                raise DataError(f"{what}: class folder {root / name} has no images ({', '.join(wanted)})")
            images += [str(p) for p in files]
            labels += [label] * len(files)
        self.class_names = classes
        self.class_id_map_file = Path(class_id_map_file) if class_id_map_file else root / "label_list.txt"
        self._write_class_map(what)
        super().__init__(images, labels, images, transform_ops, str(root))

    def _write_class_map(self, what: str) -> None:
        text = "".join(f"{i} {name}\n" for i, name in enumerate(self.class_names))
        try:
            if not self.class_id_map_file.is_file() or self.class_id_map_file.read_text(encoding="utf-8") != text:
                self.class_id_map_file.parent.mkdir(parents=True, exist_ok=True)
                self.class_id_map_file.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise DataError(f"{what}: cannot write the class-id map {self.class_id_map_file}: "
                            f"{exc.strerror or exc}; set class_id_map_file to a writable path") from None
