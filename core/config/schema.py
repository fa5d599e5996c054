"""Validated config sections: attrs classes that the core reads, and the checks behind them.

Each field carries a *check* in its metadata: a function that returns the
(possibly converted) value or raises ``ValueError("what was expected")``.
:func:`structure` runs them and turns failures into :class:`ConfigError`
messages that name the key path, the value found and what was expected.
"""
from __future__ import annotations

import difflib
import warnings
from typing import Any, Callable, Iterable, Mapping, TypeVar

import attrs

from corolla.plugin.errors import ConfigError

T = TypeVar("T")
Check = Callable[[Any], Any]


def setting(default: Any, check: Check, *, factory: bool = False) -> Any:
    """An attrs field with a check; ``factory`` makes ``default`` a zero-argument factory."""
    if factory:
        return attrs.field(factory=default, metadata={"check": check})
    return attrs.field(default=default, metadata={"check": check})


# --- checks ------------------------------------------------------------------


def integer(minimum: int | None = None) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise ValueError("an integer" + (f" >= {minimum}" if minimum is not None else ""))
        return value

    return check


def number(minimum: float | None = None) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (minimum is not None and value < minimum):
            raise ValueError("a number" + (f" >= {minimum}" if minimum is not None else ""))
        return float(value)

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a non-empty string")
    return value


def optional(check: Check) -> Check:
    def wrapped(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as exc:
            raise ValueError(f"null or {exc}") from None

    return wrapped


def choice(*options: str) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError("one of " + ", ".join(repr(o) for o in options))
        return value

    return check


def list_of(item: Check, *, length: int | None = None) -> Check:
    def check(value: Any) -> list:
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            raise ValueError(f"a list of {length or 'any number of'} items")
        try:
            return [item(v) for v in value]
        except ValueError as exc:
            raise ValueError(f"a list whose items are each {exc}") from None

    return check


def mapping_of(key: Check, value: Check) -> Check:
    def check(data: Any) -> dict:
        if not isinstance(data, Mapping):
            raise ValueError("a mapping")
        return {key(k): value(v) for k, v in data.items()}

    return check


def any_value(value: Any) -> Any:
    return value


# --- structuring -------------------------------------------------------------


def structure(cls: type[T], data: Any, key_path: str, *, unknown: str = "error") -> T:
    """Build the attrs class ``cls`` from a config mapping, checking every key.

    ``unknown`` says what an unknown key is: ``"error"``, or ``"warn"`` for
    sections where PaddleClas configs carry keys that corolla does not use.
    Nested attrs classes are structured recursively.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{key_path}: expected a mapping, found {data!r} ({type(data).__name__})")
    fields = {f.name: f for f in attrs.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{key_path}.{key}"
        field = fields.get(key)
        if field is None:
            if unknown == "error":
                raise ConfigError(f"{path}: unknown key.{did_you_mean(key, fields)} Known keys: {', '.join(fields)}.")
            warn_unused_key(path, fields)
            continue
        nested = field.metadata.get("nested")
        if nested is not None:
            kwargs[key] = structure(nested, value, path)
            continue
        try:
            kwargs[key] = field.metadata["check"](value)
        except ValueError as exc:
            raise ConfigError(f"{path}: expected {exc}, found {value!r} ({type(value).__name__})") from None
    return cls(**kwargs)


def did_you_mean(key: Any, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` naming the known keys close to ``key``, or ``""``."""
    close = difflib.get_close_matches(str(key), sorted(known), n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def warn_unused_key(path: str, known: Iterable[str]) -> None:
    """Warn that the config key at ``path`` is ignored, suggesting close ``known`` keys: for
    the places where PaddleClas configs carry keys that corolla does not use."""
    warnings.warn(f"{path}: key not used by corolla, ignored.{did_you_mean(path.rpartition('.')[2], known)}",
                  UserWarning, stacklevel=3)


def section(cls: type) -> Any:
    """A field holding a nested validated section."""
    return attrs.field(factory=cls, metadata={"nested": cls})
