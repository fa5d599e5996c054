"""The images ``infer`` and ``predict`` run on: one file or a folder's images, in batches."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from corolla.engine.formatting import progress
from corolla.engine.predictions import Prediction, emit
from corolla.plugin.errors import ConfigError, DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def list_images(path: str | Path | None, *, key_path: str = "Infer.infer_imgs") -> list[Path]:
    """``path`` itself when it is a file, else the images directly in the folder, sorted."""
    if not path:
        raise ConfigError(f"{key_path}: missing; expected an image file or a folder of images")
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{key_path}: no such file or folder: {path}")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{key_path}: the folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def batches(items: Sequence[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def classify_images(
    files: Sequence[Path],
    classify: Callable[[list[Path]], list[Prediction]],
    *,
    batch_size: int,
    desc: str,
    json_path: str | Path | None,
    echo: Callable[[str], Any],
) -> list[Prediction]:
    """Run ``classify`` over ``files`` in batches, print each prediction (and write JSON
    lines to ``json_path``)."""
    predictions: list[Prediction] = []
    for group in progress(list(batches(files, batch_size)), total=None, desc=desc, enabled=len(files) > batch_size):
        predictions.extend(classify(group))
    emit(predictions, json_path=json_path, echo=echo)
    return predictions
