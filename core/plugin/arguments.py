"""Check a component's config parameters against its factory's signature, names and values,
before anything is built.

A value is checked against the parameter's annotation (``int``, ``float | None``,
``Sequence[int]``, ``Literal["a", "b"]``, ...) with typeguard: ``class_num: six``
is an error naming the key, not a traceback from deep inside Paddle. Parameters
without an annotation, or with one that does not resolve here, take any value.
"""
from __future__ import annotations

import collections.abc
import difflib
import inspect
import types
import typing
from typing import Any, Callable, Iterable, Mapping

from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

from corolla.plugin.errors import ComponentArgumentError


def signature_of(factory: Callable[..., Any]) -> inspect.Signature | None:
    """The call signature of a factory (a class's ``__init__`` without ``self``), or None."""
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no introspectable signature
        return None


def accepted_arguments(factory: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """The keyword-usable parameters of ``factory`` and whether it takes ``**kwargs``."""
    sig = signature_of(factory)
    if sig is None:
        return {}, True
    accepted = {n: p for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return accepted, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def check_arguments(
    factory: Callable[..., Any],
    params: Mapping[str, Any],
    *,
    component: str,
    key_path: str,
    injected: Iterable[str] = (),
) -> dict[str, Any]:
    """Raise :class:`ComponentArgumentError` if ``params`` cannot be passed to ``factory``:
    an unknown name, a missing required argument, or a value its annotation rejects.
    Return the params to pass: a list given for a ``tuple`` annotation becomes a tuple.

    ``component`` describes the component for the message (its name, plugin and
    distribution); ``key_path`` is where its parameters sit in the config;
    ``injected`` names the arguments the engine will pass itself (not checked here).
    """
    sig = signature_of(factory)
    if sig is None:
        return dict(params)
    accepted, takes_var_kw = accepted_arguments(factory)
    injected = set(injected)
    if not takes_var_kw:
        for key in params:
            if key not in accepted:
                close = difflib.get_close_matches(key, list(accepted), n=3, cutoff=0.6)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ComponentArgumentError(
                    f"{_join(key_path, key)}: {component} has no argument {key!r}.{hint} "
                    f"It accepts: {format_parameters(sig) or 'no arguments'}."
                )
    for name, p in accepted.items():
        if p.default is p.empty and name not in params and name not in injected:
            raise ComponentArgumentError(
                f"{key_path}: {component} needs argument {name!r}, which is missing. "
                f"It accepts: {format_parameters(sig)}."
            )
    hints = _annotations(factory, accepted)
    checked = dict(params)
    for key, value in params.items():
        if key in hints and key not in injected:
            checked[key] = _check_value(value, hints[key], path=_join(key_path, key), component=component)
    return checked


def _check_value(value: Any, annotation: Any, *, path: str, component: str) -> Any:
    """``value``, or the tuples version of it that ``annotation`` asks for (YAML has no tuples)."""
    problem = _type_error(value, annotation)
    if problem is not None:
        tupled = _lists_as_tuples(value, annotation)
        problem = problem if tupled is value else _type_error(tupled, annotation)
        if problem is not None:
            raise ComponentArgumentError(
                f"{path}: {component} expects {describe_type(annotation)}, found {value!r} ({type(value).__name__}): {problem}"
            )
        value = tupled
    if _is_plain(annotation, int) and isinstance(value, bool):
        raise ComponentArgumentError(f"{path}: {component} expects an integer, found {value!r}")
    return value


def _type_error(value: Any, annotation: Any) -> TypeCheckError | None:
    try:
        check_type(value, annotation, collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS)
    except TypeCheckError as exc:
        return exc
    return None


def _lists_as_tuples(value: Any, annotation: Any) -> Any:
    """``value`` with each list that ``annotation`` wants as a tuple made one (also inside
    lists and unions: ``tuple[int, int] | None``, ``list[tuple[int, int]]``); else ``value`` itself."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is tuple or origin is tuple:
        if not isinstance(value, (list, tuple)):
            return value
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_lists_as_tuples(v, args[0]) for v in value)
        if args and len(args) == len(value):
            return tuple(_lists_as_tuples(v, a) for v, a in zip(value, args))
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            tupled = _lists_as_tuples(value, arg)
            if tupled is not value and _type_error(tupled, arg) is None:
                return tupled
        return value
    if origin in (list, collections.abc.Sequence) and isinstance(value, list) and args:
        items = [_lists_as_tuples(v, args[0]) for v in value]
        return items if any(i is not v for i, v in zip(items, value)) else value
    return value


def _annotations(factory: Callable[..., Any], accepted: Mapping[str, inspect.Parameter]) -> dict[str, Any]:
    """The evaluated annotation of each parameter that has one that resolves (string
    annotations are evaluated in the factory's module)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    namespace = dict(getattr(inspect.unwrap(target), "__globals__", {}))
    found = {}
    for name, param in accepted.items():
        annotation = param.annotation
        if annotation is param.empty or annotation is Any:
            continue
        if isinstance(annotation, str):
            try:  # one parameter at a time: an annotation that does not resolve here only skips its own check
                annotation = typing.get_type_hints(_Annotated(annotation), globalns={**vars(typing), **namespace})["value"]
            except Exception:
                continue
        if _checkable(annotation):
            found[name] = annotation
    return found


class _Annotated:
    """An object with one annotation, for :func:`typing.get_type_hints` to resolve."""

    def __init__(self, annotation: str) -> None:
        self.__annotations__ = {"value": annotation}


def _checkable(annotation: Any) -> bool:
    """Only annotations about plain config values are checked; a parameter typed with a
    Paddle class, a protocol or a callable takes what its factory documents."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return annotation in (int, float, str, bool, list, dict, tuple, type(None)) or annotation is typing.Any
    if origin is typing.Literal:
        return True
    return all(_checkable(arg) for arg in typing.get_args(annotation) if arg is not Ellipsis)


def _is_plain(annotation: Any, kind: type) -> bool:
    return annotation is kind


def describe_type(annotation: Any) -> str:
    """A reader's name for an annotation: ``an integer``, ``a number or null``, ``a list of an integer``."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if origin is None:
        return _PLAIN_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence):
        return f"a list of {_PLURAL_NAMES.get(args[0], describe_type(args[0]))}" if args else "a list"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping"
    return str(annotation)


_PLURAL_NAMES = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
_PLAIN_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
                type(None): "null", list: "a list", dict: "a mapping", tuple: "a list"}


def format_parameters(sig: inspect.Signature) -> str:
    """``a, b=1, c='x'`` for the keyword-usable parameters of a signature."""
    parts = []
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            continue
        parts.append(name if p.default is p.empty else f"{name}={p.default!r}")
    return ", ".join(parts)


def _join(key_path: str, key: str) -> str:
    return f"{key_path}.{key}" if key_path else key
