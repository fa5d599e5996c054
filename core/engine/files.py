"""Files written so that a crash, a kill or a full disk leaves the old file or the new one, whole.

A checkpoint is a path prefix (``output/ResNet50_vd/latest``) with up to four files
(``.pdparams``, ``.pdopt``, ``.pdstates``, ``.pdema``), each a pickled
``dict[str, numpy.ndarray]`` that :func:`corolla.engine.safe_pickle.load_state_dict_file`
reads without running code. Each file is written to a temporary name in the same
folder, flushed to disk and renamed over the old one; the renames of one checkpoint
happen together after all its files are complete.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import IO, Callable, Mapping

import numpy as np

from corolla.engine.safe_pickle import load_state_dict_file
from corolla.plugin.errors import CorollaError, DataError

SUFFIXES = (".pdparams", ".pdopt", ".pdstates", ".pdema")
#: the ending of a checkpoint file still being written (``.tmp-XXXX.ckpt``)
TEMP_SUFFIX = ".ckpt"


class WriteError(CorollaError):
    """A file could not be written (a full disk, no permission); the previous file is intact."""


def write_checkpoint(prefix: Path, files: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Write ``{suffix: arrays}`` beside ``prefix`` atomically (temp file + rename).

    A failure (a full disk) raises :class:`WriteError` saying that the checkpoint's
    previous files are intact and how to resume from them.
    """
    staged: list[tuple[str, Path]] = []
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for suffix, arrays in files.items():
            staged.append((_stage(prefix.parent, lambda stream, a=arrays: pickle.dump(dict(a), stream, protocol=4)),
                           prefix.with_name(prefix.name + suffix)))
    except BaseException as exc:
        for temp, _ in staged:
            Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            kept = "its previous files are intact" if prefix.with_name(prefix.name + ".pdparams").is_file() else "nothing was left behind"
            raise WriteError(
                f"could not write checkpoint {prefix}: {exc.strerror or exc}; {kept}. Free some space (or fix the "
                f"permissions) and resume the run with -o Global.checkpoints=<its folder>/latest"
            ) from exc
        raise
    # .pdstates last: it is what a resume reads first
    for temp, final in sorted(staged, key=lambda pair: pair[1].suffix == ".pdstates"):
        os.replace(temp, final)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a crash, a kill or a full disk leaves the
    old file or the new one, whole (:class:`WriteError` says which file could not be written)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(_stage(path.parent, lambda stream: stream.write(text.encode("utf-8"))), path)
    except OSError as exc:
        old = "the previous one is intact" if path.is_file() else "nothing was written"
        raise WriteError(f"could not write {path}: {exc.strerror or exc}; {old}") from exc
    return path


def _stage(directory: Path, write: Callable[[IO[bytes]], object]) -> str:
    """A new temporary file in ``directory`` with what ``write`` wrote, flushed to disk."""
    handle, temp = tempfile.mkstemp(prefix=".tmp-", suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return temp


def checkpoint_file(path: str | Path, suffix: str = ".pdparams") -> Path:
    """The file of a checkpoint given as a prefix (``best_model``) or a full name."""
    path = Path(path)
    if path.suffix in SUFFIXES:
        return path
    return path.with_name(path.name + suffix)


def read_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """Read one checkpoint file; a missing file is a DataError naming ``what``."""
    if not path.is_file():
        raise DataError(f"{what}: file not found: {path}")
    return load_state_dict_file(str(path))
