"""Checkpoint files, written so that a crash, a kill or a full disk leaves the old files or
the new ones, whole (:mod:`corolla.data.atomic`).

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
from pathlib import Path
from typing import Mapping

import numpy as np

from corolla.data.atomic import WriteError, staged_file
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.plugin.errors import DataError

SUFFIXES = (".pdparams", ".pdopt", ".pdstates", ".pdema")


def write_checkpoint(prefix: Path, files: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Write ``{suffix: arrays}`` beside ``prefix`` atomically (temp file + rename).

    A failure (a full disk) raises :class:`WriteError` saying that the checkpoint's
    previous files are intact and how to resume from them.
    """
    staged: list[tuple[str, Path]] = []
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for suffix, arrays in files.items():
            final = prefix.with_name(prefix.name + suffix)
            staged.append((staged_file(prefix.parent, lambda stream, a=arrays: pickle.dump(dict(a), stream, protocol=4),
                                       replaces=final), final))
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


def checkpoint_prefix(path: str | Path) -> Path:
    """The prefix of a checkpoint given as a prefix (``latest``) or as one of its files
    (``latest.pdparams``, ``latest.pdstates``, ...)."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in SUFFIXES else path


def checkpoint_file(path: str | Path, suffix: str = ".pdparams") -> Path:
    """The ``suffix`` file of a checkpoint given as a prefix (``best_model``) or as any of its files."""
    prefix = checkpoint_prefix(path)
    return prefix.with_name(prefix.name + suffix)


def read_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """Read one checkpoint file; a missing file is a DataError naming ``what`` (and, when
    the prefix is a run folder, the checkpoint in it that was probably meant)."""
    if not path.is_file():
        raise DataError(f"{what}: file not found: {path}{_meant_in_folder(path)}")
    return load_state_dict_file(str(path))


def _meant_in_folder(path: Path) -> str:
    """``"; did you mean <folder>/latest?"`` when ``path``'s prefix is a folder holding that
    checkpoint; for a ``best_model`` missing beside a ``latest``, why a run writes none."""
    folder = checkpoint_prefix(path)
    latest = folder.with_name("latest")
    if folder.name.startswith("best_model") and latest.with_name("latest" + path.suffix).is_file():
        return (f"; the run in {folder.parent} wrote no {folder.name}: it evaluated no epoch (a run evaluates "
                f"with DataLoader.Eval, Global.eval_during_train and Global.start_eval_epoch <= Global.epochs); "
                f"its last checkpoint is {latest}")
    if not folder.is_dir():
        return ""
    for name in ("latest", "best_model"):
        if (folder / (name + path.suffix)).is_file():
            return f" ({folder} is a run folder); did you mean {folder / name}?"
    return ""
