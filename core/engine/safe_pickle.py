"""Reading ``.pdparams`` files without running code from them.

A ``.pdparams`` file (what ``paddle.save(layer.state_dict(), path)`` writes) is a
pickle, and unpickling runs whatever callables the file names. corolla reads
weights and checkpoints only with :func:`load_state_dict_file`, whose unpickler
admits plain containers, numbers, strings and numpy arrays, nothing else.
"""
from __future__ import annotations

import codecs
import collections
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

try:  # numpy 2 renamed numpy.core to numpy._core
    from numpy import _core as _np_core
except ImportError:
    from numpy import core as _np_core

from corolla.plugin.errors import WeightsError

def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Pickle protocol 2 stores bytes as codecs.encode(text, "latin1"); allow that use only.
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, encoding)


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
# Files written under numpy 1 name numpy.core, under numpy 2 numpy._core.
for _core in ("numpy.core", "numpy._core"):
    _SAFE_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _np_core.multiarray._reconstruct
    _SAFE_GLOBALS[(f"{_core}.multiarray", "scalar")] = _np_core.multiarray.scalar
    _SAFE_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _np_core.numeric._frombuffer


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in ``_SAFE_GLOBALS``; anything else stops the load."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}") from None


#: paddle.save splits arrays over 1 GiB into slices when pickling with protocol 2 or 3.
_SLICED_ARRAYS_KEY = "UnpackBigParamInfor@@"
#: paddle.save's table of structured name -> tensor name; paddle.load drops it too.
_NAME_TABLE_KEY = "StructuredToParameterName@@"


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file written by ``paddle.save`` without running code from it.

    Returns what ``paddle.load(path, return_numpy=True)`` returns, with every
    tensor as a ``numpy.ndarray``: layer state dicts (``.pdparams``) map names
    to arrays; optimizer state dicts (``.pdopt``) also hold plain nested values
    (``LR_Scheduler``), and both load with ``set_state_dict``. Not supported: files
    holding ``paddle.Tensor`` objects pickled outside a dict of tensors in
    static-graph mode (``paddle.save`` encodes those with ``eval``) and
    ``safetensors``/binary formats.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            loaded = _RestrictedUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise WeightsError(f"weights file {path} does not exist") from None
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("forbidden global"):
            raise WeightsError(
                f"refusing to load {path}: it asks to run {str(exc).removeprefix('forbidden global ')}, "
                "which a weights file never needs (only plain containers, numbers, strings and numpy "
                "arrays are allowed). Nothing from the file was executed."
            ) from None
        raise WeightsError(f"{path} is not a paddle.save file (.pdparams/.pdopt): {exc}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, MemoryError) as exc:
        raise WeightsError(f"{path} is not a readable paddle.save file: {type(exc).__name__}: {exc}") from None
    if not isinstance(loaded, dict):
        raise WeightsError(f"{path} holds a {type(loaded).__name__}; expected a dict of name -> array")
    loaded.pop(_NAME_TABLE_KEY, None)
    return _join_sliced_arrays(_as_plain_values(loaded, str(path)))


def _as_plain_values(value: Any, where: str) -> Any:
    """Arrays stay; ``(name, array)`` pairs (paddle.save's form for tensors nested in
    other containers) become the array; containers are walked."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise WeightsError(f"{where}: holds an array of Python objects; weights are numeric arrays")
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], np.ndarray):
        return _as_plain_values(value[1], f"{where}[{value[0]!r}]")
    if isinstance(value, dict):
        return {key: _as_plain_values(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_as_plain_values(item, f"{where}[{i}]") for i, item in enumerate(value))
    return value


def _join_sliced_arrays(state: dict[str, Any]) -> dict[str, Any]:
    slices = state.pop(_SLICED_ARRAYS_KEY, None)
    for key, info in (slices or {}).items():
        parts = [state.pop(part) for part in info["slices"]]
        state[key] = np.concatenate(parts).reshape(info["OriginShape"])
    return state
