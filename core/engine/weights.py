"""Pretrained weights: model-zoo tables, a download cache, and safe reading of ``.pdparams``.

A ``.pdparams`` file (what ``paddle.save(layer.state_dict(), path)`` writes) is a
pickle, and unpickling runs whatever callables the file names. corolla therefore
reads weights and checkpoints only with :func:`load_state_dict_file`, whose
unpickler admits plain containers, numbers, strings and numpy arrays, nothing else.
"""
from __future__ import annotations

import codecs
import collections
import logging
import os
import pickle
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping, TypeVar

import attrs
import numpy as np
import paddle
from tqdm import tqdm

try:  # numpy 2 renamed numpy.core to numpy._core
    from numpy import _core as _np_core
except ImportError:
    from numpy import core as _np_core

from corolla.plugin.errors import ComponentArgumentError, WeightsError

log = logging.getLogger(__name__)

#: Environment variable naming the download cache folder.
WEIGHTS_DIR_ENV = "COROLLA_WEIGHTS_DIR"
#: Where PaddleClas publishes its ImageNet-1k weights.
MODEL_ZOO_URL = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"

_LayerT = TypeVar("_LayerT", bound=paddle.nn.Layer)


@attrs.frozen
class PretrainedWeights:
    """One published weights file: its URL, ImageNet-1k top-1 accuracy and input size."""

    url: str
    top1: float | None
    input_size: int = 224


# --- the cache and downloads --------------------------------------------------


def weights_dir() -> Path:
    """The download cache: ``$COROLLA_WEIGHTS_DIR``, else ``~/.cache/corolla/weights``."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "corolla" / "weights"


def cache_path(url: str) -> Path:
    """Where the file at ``url`` is (or will be) cached."""
    return weights_dir() / Path(urllib.parse.urlparse(url).path).name


def fetch(url: str) -> Path:
    """The cached copy of ``url``, downloading it first (with a progress bar) if needed.

    The download goes to a temporary file that is renamed into place only when
    complete, so an interrupted download never leaves a truncated file behind.
    """
    target = cache_path(url)
    if target.is_file():
        return target
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            expected = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name, disable=None) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        received = partial.stat().st_size
        if expected is not None and received != expected:
            raise OSError(f"the connection closed after {received} of {expected} bytes")
        os.replace(partial, target)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        else:
            reason = getattr(exc, "reason", exc)
        raise WeightsError(
            f"could not download {url} ({reason}). If this machine is offline, download that file "
            f"elsewhere and put it at {target} (the cache folder is ${WEIGHTS_DIR_ENV}, "
            f"default ~/.cache/corolla/weights)."
        ) from exc
    return target


# --- reading .pdparams safely ---------------------------------------------------


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


# --- loading into a model ---------------------------------------------------------


def load_pretrained(
    model: _LayerT,
    pretrained: bool | str | os.PathLike[str] | None,
    *,
    name: str,
    table: Mapping[str, PretrainedWeights],
    use_ssld: bool = False,
) -> _LayerT:
    """Load ``pretrained`` into ``model`` (a ``name`` backbone) and return the model.

    ``pretrained`` is ``False``/``None`` (nothing to load), ``True`` (the
    published file of ``name`` in ``table``; ``use_ssld`` picks ``<name>_ssld``),
    a local path (``.pdparams`` may be left off, as PaddleClas allows) or an
    ``http(s)://`` URL (downloaded to the cache). If only the classifier's
    number of classes differs from the file, everything else is loaded and one
    log line names the classifier keys left as initialised; any other mismatch
    or missing key raises :class:`WeightsError`.
    """
    if pretrained is None or pretrained is False:
        return model
    path = _weights_file(pretrained, name=name, table=table, use_ssld=use_ssld)
    apply_state_dict(model, load_state_dict_file(path), name=name, source=str(path))
    return model


def _weights_file(
    pretrained: bool | str | os.PathLike[str], *, name: str, table: Mapping[str, PretrainedWeights], use_ssld: bool
) -> Path:
    if pretrained is True:
        key = f"{name}_ssld" if use_ssld else name
        if key not in table:
            available = ", ".join(k for k in (name, f"{name}_ssld") if k in table) or "none"
            what = "SSLD weights (use_ssld=True)" if use_ssld else "pretrained weights"
            raise ComponentArgumentError(
                f"{name}: PaddleClas publishes no {what} for this model (published for it: {available}); "
                "give pretrained as a local path or URL instead"
            )
        return fetch(table[key].url)
    if isinstance(pretrained, (str, os.PathLike)):
        text = os.fspath(pretrained)
        if text.startswith(("http://", "https://")):
            return fetch(text)
        given = Path(text).expanduser()
        with_suffix = given.with_name(given.name + ".pdparams")
        for candidate in (given, with_suffix):
            if candidate.is_file():
                return candidate
        raise WeightsError(f"{name}: pretrained weights file not found: tried {given} and {with_suffix}")
    raise ComponentArgumentError(
        f"{name}: pretrained must be False, True, a file path or an http(s) URL; got {pretrained!r}"
    )


def apply_state_dict(model: paddle.nn.Layer, state: Mapping[str, Any], *, name: str, source: str) -> None:
    """Copy ``state`` (name -> array) into ``model``'s parameters and buffers.

    Keys whose shapes differ only in the last axis, all from the same N to the
    same M classes, are the classifier: they are skipped with one log line.
    A missing key or any other shape mismatch raises :class:`WeightsError`
    before anything is copied; keys the model does not have are logged and ignored.
    """
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    mismatched = {
        key: (tuple(np.shape(state[key])), tuple(tensor.shape))
        for key, tensor in own.items()
        if key in state and tuple(np.shape(state[key])) != tuple(tensor.shape)
    }
    head = _classifier_keys(mismatched)
    wrong = {key: shapes for key, shapes in mismatched.items() if key not in head}
    if missing or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} keys missing from the file: {_listing(missing)}")
        if wrong:
            problems.append(
                f"{len(wrong)} shape mismatches (file vs model): "
                + _listing([f"{key} {list(f)} vs {list(m)}" for key, (f, m) in wrong.items()])
            )
        raise WeightsError(f"{source} does not fit {name}: " + "; ".join(problems))
    for key, tensor in own.items():
        if key not in head:
            value = np.asarray(state[key])
            if str(value.dtype) != str(tensor.dtype).removeprefix("paddle."):
                value = paddle.to_tensor(value).astype(tensor.dtype)  # e.g. float32 file, float16 model
            tensor.set_value(value)
    if head:
        (file_classes, model_classes), = {(f[-1], m[-1]) for f, m in head.values()}
        log.warning(
            "%s: %s has %d classes, the model %d; kept the new classifier (%s) and loaded every other parameter",
            name, source, file_classes, model_classes, ", ".join(head),
        )
    if unexpected:
        log.warning("%s: ignored %d keys of %s that the model does not have: %s", name, len(unexpected), source, _listing(unexpected))


def _classifier_keys(mismatched: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> dict:
    """The mismatches that are a different number of classes, or {} if any is not."""
    changes = set()
    for file_shape, model_shape in mismatched.values():
        if len(file_shape) != len(model_shape) or file_shape[:-1] != model_shape[:-1]:
            return {}
        changes.add((file_shape[-1], model_shape[-1]))
    return dict(mismatched) if len(changes) == 1 else {}


def _listing(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


# --- describing the tables ----------------------------------------------------------


def describe_weights(name: str, table: Mapping[str, PretrainedWeights]) -> str:
    """The published weights of ``name`` (and its SSLD variant) as text, for ``corolla plugins show``."""
    rows = [(key, table[key]) for key in (name, f"{name}_ssld") if key in table]
    if not rows:
        return "pretrained weights: none published; pass a local path or URL as pretrained"
    width = max(len(key) for key, _ in rows)
    lines = ["pretrained weights (ImageNet-1k; pretrained=True, use_ssld=True for *_ssld):"]
    for key, weights in rows:
        top1 = f"{weights.top1:.2%}" if weights.top1 is not None else "-"
        lines.append(f"  {key.ljust(width)}  top-1 {top1:>7}  input {weights.input_size}  {weights.url}")
    lines.append(f"  cache: {weights_dir()} (set ${WEIGHTS_DIR_ENV} to change)")
    return "\n".join(lines)
