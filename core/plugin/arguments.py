"""Check a component's config parameters against its signature before building it."""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Mapping

from corolla.plugin.errors import ComponentArgumentError


def signature_of(factory: Callable[..., Any]) -> inspect.Signature | None:
    """The call signature of a factory (a class's ``__init__`` without ``self``), or None."""
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no introspectable signature
        return None


def check_arguments(
    factory: Callable[..., Any],
    params: Mapping[str, Any],
    *,
    component: str,
    key_path: str,
) -> None:
    """Raise ComponentArgumentError if ``params`` cannot be passed to ``factory``.

    ``component`` describes the component for the message (its name, plugin and
    distribution); ``key_path`` is where its parameters sit in the config.
    """
    sig = signature_of(factory)
    if sig is None:
        return
    accepted = {
        name: p
        for name, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    takes_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
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
        if p.default is p.empty and name not in params:
            raise ComponentArgumentError(
                f"{key_path}: {component} needs argument {name!r}, which is missing. "
                f"It accepts: {format_parameters(sig)}."
            )


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
