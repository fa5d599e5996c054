"""Checkpoints in PaddleClas's layout, written atomically, read without running code.

A checkpoint is a path prefix (``output/ResNet50_vd/latest``) with up to four files:

- ``.pdparams``: the model's weights, ``{structured name: array}`` (loadable by
  PaddleClas and as ``Global.pretrained_model``),
- ``.pdopt``: the optimizer state, keyed by structured parameter names (Paddle's
  own keys use process-global names that change with construction order),
- ``.pdstates``: epoch, step, best metric, seed, lr-schedule and loss-scaler state,
- ``.pdema``: the EMA weights, when EMA is on.

Every file is a pickled ``dict[str, numpy.ndarray]`` (nested state flattened to
``outer/inner`` keys, scalars as 0-d arrays), so :func:`corolla.weights.load_state_dict_file`
reads all of them with its restricted unpickler. Each file is written to a
temporary name, flushed to disk and renamed over the old one; the renames of one
checkpoint happen together after all its files are complete.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import paddle

from corolla.plugin.errors import DataError
from corolla.engine.weights import load_state_dict_file

SUFFIXES = (".pdparams", ".pdopt", ".pdstates", ".pdema")
#: the ending of a checkpoint file still being written (``.tmp-XXXX.ckpt``)
TEMP_SUFFIX = ".ckpt"


# --- files ---------------------------------------------------------------------


def write_checkpoint(prefix: Path, files: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Write ``{suffix: arrays}`` beside ``prefix`` atomically (temp file + rename)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for suffix, arrays in files.items():
            staged.append((_stage(prefix.parent, arrays), prefix.with_name(prefix.name + suffix)))
    except BaseException:
        for temp, _ in staged:
            Path(temp).unlink(missing_ok=True)
        raise
    # .pdstates last: it is what a resume reads first
    for temp, final in sorted(staged, key=lambda pair: pair[1].suffix == ".pdstates"):
        os.replace(temp, final)


def _stage(directory: Path, arrays: Mapping[str, np.ndarray]) -> str:
    handle, temp = tempfile.mkstemp(prefix=".tmp-", suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(dict(arrays), stream, protocol=4)
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


# --- nested state <-> flat arrays ------------------------------------------------------


def flatten(state: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": array(1)}``; None values are left out.
    (``/`` because parameter names contain dots.)"""
    flat: dict[str, np.ndarray] = {}
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "/"))
        elif value is not None:
            flat[name] = value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)
    return flat


def unflatten(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Invert :func:`flatten`; 0-d arrays become Python scalars."""
    nested: dict[str, Any] = {}
    for name, value in arrays.items():
        *parents, leaf = name.split("/")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        value = np.asarray(value)
        node[leaf] = value.item() if value.ndim == 0 else value
    return nested


# --- model weights ---------------------------------------------------------------


def model_arrays(model: paddle.nn.Layer) -> dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in model.state_dict().items()}


def apply_weights(model: paddle.nn.Layer, arrays: Mapping[str, np.ndarray], *, source: str) -> None:
    """Load ``arrays`` into ``model``, skipping entries whose shape differs (a new
    classifier head when fine-tuning); warn about what was skipped, and fail when
    nothing matched."""
    own = model.state_dict()
    usable = {k: v for k, v in arrays.items() if k in own and tuple(np.shape(v)) == tuple(own[k].shape)}
    if not usable:
        raise DataError(
            f"{source}: none of its {len(arrays)} entries match the model's {len(own)} "
            f"(e.g. file has {sorted(arrays)[:3]}, model has {sorted(own)[:3]}); is it a checkpoint of another model?"
        )
    reshaped = sorted(k for k in arrays if k in own and k not in usable)
    missing = sorted(set(own) - set(arrays))
    if reshaped or missing:
        warnings.warn(
            f"{source}: loaded {len(usable)} of {len(own)} model entries; "
            + (f"kept the model's own {len(reshaped)} with another shape ({', '.join(reshaped[:4])}); " if reshaped else "")
            + (f"{len(missing)} not in the file ({', '.join(missing[:4])})" if missing else ""),
            UserWarning,
            stacklevel=2,
        )
    with warnings.catch_warnings():  # Paddle warns per skipped key; one warning above says it all
        warnings.filterwarnings("ignore", message="Skip loading for")
        model.set_state_dict({k: np.asarray(v) for k, v in usable.items()})


def load_weights(model: paddle.nn.Layer, path: str | Path, *, key_path: str) -> Path:
    """Load ``Global.pretrained_model``-style weights (prefix or file) into ``model``."""
    file = checkpoint_file(path)
    apply_weights(model, read_arrays(file, key_path), source=f"{key_path} ({file})")
    return file


# --- optimizer state -------------------------------------------------------------------


def optimizer_arrays(optimizer: Any, model: paddle.nn.Layer) -> dict[str, np.ndarray]:
    """The optimizer's state, renamed from Paddle's global parameter names to the
    model's structured names, flattened to arrays."""
    renames = {p.name: structured for structured, p in model.named_parameters()}
    return flatten(_rename(optimizer.state_dict(), renames))


def load_optimizer_arrays(optimizer: Any, model: paddle.nn.Layer, arrays: Mapping[str, np.ndarray]) -> None:
    renames = {structured: p.name for structured, p in model.named_parameters()}
    state = _rename(unflatten(arrays), renames)
    optimizer.set_state_dict(state)


def _rename(state: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    """Rename keys ``<param>_<accumulator>`` (and the keys of ``master_weights``)."""
    by_length = sorted(renames, key=len, reverse=True)

    def rename(key: str) -> str:
        for old in by_length:
            if key == old or key.startswith(old + "_"):
                return renames[old] + key[len(old):]
        return key

    renamed: dict[str, Any] = {}
    for key, value in state.items():
        if key == "master_weights" and isinstance(value, Mapping):
            renamed[key] = {rename(k): v for k, v in value.items()}
        elif key == "LR_Scheduler":
            renamed[key] = value
        else:
            renamed[rename(key)] = value
    return renamed
