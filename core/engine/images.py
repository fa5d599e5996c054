"""The images ``infer`` and ``predict`` run on, and the loop that classifies them in batches.

Output streams: each batch's lines are printed, and with ``--json`` written, as soon as
the batch is done, so a long run shows progress and a failure keeps what was done. The
JSON lines go to ``FILE.partial`` and are renamed to ``FILE`` when every image is done:
``FILE`` is never left half-written. A run stopped by an unreadable image says that its
predictions so far are in ``FILE.partial``, and that a ``FILE`` already there is an earlier run's.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

import numpy as np

from corolla.data.atomic import WriteError, unwritable_reason
from corolla.data.pipeline import UnreadableImageError
from corolla.engine.formatting import progress
from corolla.engine.predictions import Prediction
from corolla.plugin.errors import ConfigError, DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(path: str | Path | None, *, key_path: str = "Infer.infer_imgs") -> list[Path]:
    """``path`` itself when it is a file, else the images in the folder and its sub-folders
    (a class-per-folder tree), sorted."""
    if not path:
        raise ConfigError(f"{key_path}: missing; expected an image file or a folder of images")
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{key_path}: no such file or folder: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise DataError(f"{key_path}: the folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if others := [p.relative_to(path).as_posix() for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        warnings.warn(f"{key_path}: {len(others)} of the {len(files)} files in {path} are not classified, as their names "
                      f"do not end in an image suffix: {shown}", UserWarning, stacklevel=2)
    return images


def batches(items: Sequence[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def classify_images(
    files: Sequence[Path],
    preprocess: Callable[[str], np.ndarray],
    classify: Callable[[np.ndarray, list[str]], list[Prediction]],
    *,
    batch_size: int,
    desc: str,
    root: str | Path | None = None,
    json_path: str | Path | None = None,
    skip_bad_images: bool = False,
    echo: Callable[[str], Any] = print,
) -> list[Prediction]:
    """Preprocess and classify ``files`` in batches, printing each batch's predictions as it
    is done (named relative to ``root``, the folder given) and writing JSON lines.

    An unreadable image is an error naming it, unless ``skip_bad_images``: then each is
    named on stderr and skipped, and the count is given at the end.
    """
    base = Path(root) if root is not None and Path(root).is_dir() else None
    partial = _start_json(Path(json_path)) if json_path is not None else None
    predictions: list[Prediction] = []
    skipped = 0
    with _open_json(partial) if partial is not None else contextlib.nullcontext() as stream:
        for group in progress(list(batches(files, batch_size)), total=None, desc=desc, enabled=len(files) > batch_size):
            arrays, names = [], []
            for file in group:
                try:
                    arrays.append(preprocess(str(file)))
                except UnreadableImageError as exc:
                    if not skip_bad_images:
                        kept = _where_predictions_are(partial, len(predictions)) if partial else ""
                        raise DataError(f"{_naming(file, exc)} (to skip unreadable images, pass --skip-bad-images)"
                                        f"{kept}") from None
                    skipped += 1
                    print(f"skipped {_naming(file, exc)}", file=sys.stderr, flush=True)
                    continue
                names.append(str(file))
            if not arrays:
                continue
            done = classify(np.stack(arrays), names)
            for prediction in done:
                echo(prediction.line(base))
                if stream is not None:
                    stream.write(prediction.json() + "\n")
            if stream is not None:
                stream.flush()
            predictions.extend(done)
    if partial is not None:
        os.replace(partial, json_path)
    if skipped:
        print(f"{desc}: skipped {skipped} of {len(files)} images that could not be read", file=sys.stderr, flush=True)
    return predictions


def _start_json(json_path: Path) -> Path:
    """``json_path.partial``, the file this run writes until every image is done."""
    if json_path.is_dir():
        raise ConfigError(f"--json: {json_path} is a folder; expected the name of a file to write")
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(json_path, exc) from exc
    return Path(f"{json_path}.partial")


def _open_json(partial: Path) -> IO[str]:
    try:
        return open(partial, "w", encoding="utf-8")
    except OSError as exc:
        raise _unwritable(Path(str(partial).removesuffix(".partial")), exc, partial) from exc


def _unwritable(json_path: Path, exc: OSError, partial: Path | None = None) -> WriteError:
    """``--json`` names a file in a folder that cannot be made or written (read-only, no
    permission, a file in the way)."""
    written = f" (written to {partial} first)" if partial is not None else ""
    return WriteError(f"--json: cannot write {json_path}{written}: {unwritable_reason(json_path.parent, exc)}; "
                      "give a file in a folder this user can write")


def _where_predictions_are(partial: Path, count: int) -> str:
    final = Path(str(partial).removesuffix(".partial"))
    earlier = f"; {final} is an earlier run's, left as it was" if final.exists() else ""
    return f"; the predictions made so far ({count}) are in {partial}{earlier}"


def _naming(file: Path, exc: Exception) -> str:
    """The message of ``exc``, naming ``file`` once (the pipeline's errors already name it)."""
    message = str(exc)
    return message if str(file) in message else f"{file}: {message}"
