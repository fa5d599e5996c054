"""Loading a state into a model: pretrained files (a path, a URL, or the model zoo's
published file), ``Global.pretrained_model`` and resumed checkpoints.

Files are read with :func:`corolla.engine.safe_pickle.load_state_dict_file`, which
never runs code from them. :func:`apply_state_dict` is the one way weights reach a
model; Paddle is imported on use.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, TypeVar

import numpy as np

from corolla.engine.model_zoo import PretrainedWeights, fetch
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.plugin.errors import ComponentArgumentError, WeightsError

log = logging.getLogger(__name__)

_LayerT = TypeVar("_LayerT")
#: the key path of the model being built that will stay frozen (see :func:`loading_frozen`)
_frozen_model: contextvars.ContextVar[str | None] = contextvars.ContextVar("corolla_frozen_model", default=None)



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
    or missing key raises :class:`WeightsError`. Inside :func:`loading_frozen` the
    load is strict: another number of classes is an error too.
    """
    if pretrained is None or pretrained is False:
        return model
    path = _weights_file(pretrained, name=name, table=table, use_ssld=use_ssld)
    state = load_state_dict_file(path)
    frozen = _frozen_model.get()
    if frozen is None:
        apply_state_dict(model, state, name=name, source=str(path))
    else:
        _apply_to_frozen(model, state, key_path=frozen, name=name, source=str(path))
    return model


@contextlib.contextmanager
def loading_frozen(key_path: str) -> Iterator[None]:
    """Build, inside the block, the model at ``key_path`` that will stay frozen (never trained).

    :func:`load_pretrained` then loads strictly: a parameter that kept a fresh
    initialisation (a classifier of another number of classes) would never be trained,
    so it is an error naming ``key_path`` and what to set, not a log line.
    """
    token = _frozen_model.set(key_path)
    try:
        yield
    finally:
        _frozen_model.reset(token)


def _apply_to_frozen(model: Any, state: Mapping[str, Any], *, key_path: str, name: str, source: str) -> None:
    try:
        apply_state_dict(model, state, name=name, source=source, strict=True)
    except WeightsError as exc:
        frozen = (f"{key_path} ({name}) is frozen (freeze_params_list), so it is never trained "
                  "and every parameter must come from its weights")
        classes = _class_change(_mismatches(model.state_dict(), state))
        if classes is None:
            raise WeightsError(f"{frozen}: {exc}") from None
        file_classes, model_classes = classes
        raise WeightsError(
            f"{frozen}, but {source} has {file_classes} classes and {key_path} {model_classes}: its classifier would stay "
            f"randomly initialised. Set {key_path}.class_num={file_classes} (-o {key_path}.class_num={file_classes})"
        ) from None


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


def apply_state_dict(model: Any, state: Mapping[str, Any], *, name: str, source: str, strict: bool = False,
                     fresh_classifier: bool = True) -> None:
    """Copy ``state`` (name -> array) into ``model``'s parameters and buffers: the one
    way weights reach a model.

    Every entry of the model must be in ``state`` with its shape. With ``strict``
    false, the classifier alone may differ, in its number of classes only (keys whose
    shapes differ in the last axis, all from the same N to the same M classes): it
    keeps its initialisation and one log line says so, unless it is frozen (not
    trainable, so never trained: an error); keys the model does not have are logged and ignored. With ``strict`` (resuming a checkpoint) both are errors.
    ``fresh_classifier=False`` (eval, infer, export: nothing will train the classifier) makes
    another class count an error. Nothing is copied unless everything fits; the
    :class:`WeightsError` lists what does not.
    """
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    mismatched = _mismatches(own, state)
    head = {} if strict else _classifier_keys(mismatched)
    wrong = {key: shapes for key, shapes in mismatched.items() if key not in head}
    if missing or wrong or (strict and unexpected):
        problems = []
        if missing:
            problems.append(f"{len(missing)} of the model's {len(own)} entries are missing from the file: {_listing(missing)}")
        if wrong:
            problems.append(
                f"{len(wrong)} shape mismatches (file vs model): "
                + _listing([f"{key} {list(f)} vs {list(m)}" for key, (f, m) in wrong.items()])
            )
        if strict and unexpected:
            problems.append(f"{len(unexpected)} entries the model does not have: {_listing(unexpected)}")
        hint = _part_of_the_other(list(own), list(state)) or " Is it a file of another model?"
        raise WeightsError(f"{source} does not fit {name}: " + "; ".join(problems) + "." + hint)
    if head and not fresh_classifier:
        file_classes, model_classes = _class_change(head)
        raise WeightsError(f"{source} has {file_classes} classes and the model ({name}) {model_classes}: its classifier would be "
                           f"random. Set Arch.class_num={file_classes}, or give the weights of a {model_classes}-class model")
    frozen = [key for key in head if not getattr(own[key], "trainable", True)]
    if frozen:  # a fresh classifier that is never trained
        file_classes, model_classes = _class_change(head)
        raise WeightsError(f"{source} has {file_classes} classes and the model ({name}) {model_classes}, but its classifier "
                           f"({', '.join(frozen)}) is frozen: it would stay randomly initialised. Give the frozen "
                           f"model class_num={file_classes}")
    for key, tensor in own.items():
        if key not in head:
            value = np.asarray(state[key])
            if str(value.dtype) != str(tensor.dtype).removeprefix("paddle."):
                import paddle

                value = paddle.to_tensor(value).astype(tensor.dtype)  # e.g. float32 file, float16 model
            tensor.set_value(value)
    if head:
        file_classes, model_classes = _class_change(head)
        log.warning(
            "%s: %s has %d classes, the model %d; kept the new classifier (%s) and loaded every other parameter",
            name, source, file_classes, model_classes, ", ".join(head),
        )
    if unexpected:
        log.warning("%s: ignored %d keys of %s that the model does not have: %s", name, len(unexpected), source, _listing(unexpected))


def _part_of_the_other(own: list[str], found: list[str]) -> str:
    """When the file holds exactly one part of a composite model (``Student.*``) or the model
    is one part of the file's: what to load instead."""
    if prefix := _part_named(own, found):
        return (f" The file holds the weights of the model's {prefix} alone: give it as that model's pretrained "
                f"(Arch.models.<i>.{prefix}.pretrained), or load it with a config whose Arch is that model.")
    if prefix := _part_named(found, own):
        return (f" The file holds a model of several parts, and its {prefix}.* entries are this model: a distillation "
                f"run writes its student alone as best_model_student; load that file instead.")
    return ""


def _part_named(whole: list[str], part: list[str]) -> str | None:
    """The prefix ``P`` whose ``P.*`` keys of ``whole``, without it, are exactly ``part``'s keys."""
    for prefix in sorted({key.split(".", 1)[0] for key in whole if "." in key}):
        if {key.split(".", 1)[1] for key in whole if key.startswith(prefix + ".")} == set(part):
            return prefix
    return None


def _mismatches(own: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """``{key: (shape in the file, shape in the model)}`` of the entries whose shapes differ."""
    return {
        key: (tuple(np.shape(state[key])), tuple(tensor.shape))
        for key, tensor in own.items()
        if key in state and tuple(np.shape(state[key])) != tuple(tensor.shape)
    }


def _class_change(mismatched: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> tuple[int, int] | None:
    """``(classes in the file, classes in the model)`` when the mismatches are a classifier's alone."""
    head = _classifier_keys(mismatched)
    if not head:
        return None
    (change,) = {(f[-1], m[-1]) for f, m in head.values()}
    return change


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
