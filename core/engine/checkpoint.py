"""What a checkpoint holds, in PaddleClas's layout (written by :mod:`corolla.engine.files`).

A checkpoint is a path prefix (``output/ResNet50_vd/latest``) with up to four files:

- ``.pdparams``: the model's weights, ``{structured name: array}`` (loadable by
  PaddleClas and as ``Global.pretrained_model``),
- ``.pdopt``: the optimizer state, keyed by structured parameter names (Paddle's
  own keys use process-global names that change with construction order),
- ``.pdstates``: epoch, step, best metric, seed, lr-schedule and loss-scaler state,
- ``.pdema``: the EMA weights, when EMA is on.

Every file is a pickled ``dict[str, numpy.ndarray]`` (nested state flattened to
``outer/inner`` keys, scalars as 0-d arrays).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import paddle

from corolla.engine.files import checkpoint_file, read_arrays
from corolla.engine.weights import apply_state_dict


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

#: checkpoint files that hold a model's weights (``.pdema``: their moving average)
WEIGHT_SUFFIXES = (".pdparams", ".pdema")


def model_arrays(model: paddle.nn.Layer) -> dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in model.state_dict().items()}


def load_weights(model: paddle.nn.Layer, path: str | Path, *, key_path: str, strict: bool = False,
                 fresh_classifier: bool = True) -> Path:
    """Load a checkpoint's weights (a prefix such as ``best_model``, a weights file, or another
    file of the checkpoint, whose ``.pdparams`` is meant) into ``model``.

    ``strict`` is for resuming: the file must be of exactly this model. Otherwise
    (``Global.pretrained_model``) the classifier may have another class count, when
    ``fresh_classifier`` (a training will train it).
    """
    given = Path(path)
    file = given if given.suffix in WEIGHT_SUFFIXES else checkpoint_file(given)  # an EMA file is weights too
    apply_state_dict(model, read_arrays(file, key_path), name=key_path, source=str(file), strict=strict,
                     fresh_classifier=fresh_classifier)
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
