"""ImageFolderDataset: one sub-folder per class, labelled through one class map per run."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from corolla.api import DataError, Pipeline, read_label_map, write_text
from corolla.plugins.datasets.base import ImageDataset, existing_root

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageFolderDataset(ImageDataset):
    """Images in ``image_root/<class name>/``, labelled by a class map (``0 name`` lines,
    PaddleClas's ``class_id_map_file`` format, read by infer and predict too).

    ``class_id_map_file`` (default ``image_root/label_list.txt``): when the file exists it
    decides the labels, and every class folder must be in it (a validation split may lack
    classes: point it at the training set's map); when it does not, the classes are the
    sub-folders in sorted order and the map is written there. The engine checks that every
    split of a run uses the training set's classes (``class_names``).
    """

    def __init__(self, image_root: str, transform_ops: Pipeline | None = None, class_id_map_file: str | None = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS) -> None:
        what = f"ImageFolderDataset({image_root})"
        root = Path(existing_root(image_root, what))
        wanted = tuple(e.lower() for e in extensions)
        folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
        if not folders:
            raise DataError(f"{what}: no class sub-folders in {root}")
        self.class_id_map_file = Path(class_id_map_file) if class_id_map_file else root / "label_list.txt"
        self.class_names = self._classes(folders, what)
        images, labels = [], []
        for name in folders:
            files = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in wanted)
            if not files:
                raise DataError(f"{what}: class folder {root / name} has no images ({', '.join(wanted)})")
            images += [str(p) for p in files]
            labels += [self.class_names.index(name)] * len(files)
        super().__init__(images, labels, images, transform_ops, str(root))

    def _classes(self, folders: list[str], what: str) -> list[str]:
        """The class names in label order: the map's when it exists, else the folders' (then written)."""
        if self.class_id_map_file.is_file():
            table = read_label_map(self.class_id_map_file, key_path=f"{what}: class_id_map_file")
            if sorted(table) != list(range(len(table))):
                raise DataError(f"{self.class_id_map_file}: class ids must be 0..{len(table) - 1}, found {sorted(table)}")
            classes = [table[i] for i in range(len(table))]
            unknown = [name for name in folders if name not in classes]
            if unknown:
                raise DataError(
                    f"{what}: class folders {', '.join(unknown)} are not in the class map {self.class_id_map_file} "
                    f"({', '.join(classes)}). Point class_id_map_file at the training set's map, or delete the "
                    "file to make it again from the folders"
                )
            return classes
        write_text(self.class_id_map_file, "".join(f"{i} {name}\n" for i, name in enumerate(folders)))
        return folders
