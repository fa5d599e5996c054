"""What makes an object a callback: methods named after lifecycle hooks, taking only what
each hook passes. The config plan checks a callback class, the engine each callback it
registers, and the conformance kit both, by these rules."""
from __future__ import annotations

import inspect
from typing import Any

from corolla.plugin import hookspecs


def lifecycle_hooks() -> dict[str, Any]:
    """The lifecycle hookspecs by name (registration hooks aside)."""
    return {name: spec for name, spec in vars(hookspecs).items()
            if name.startswith("corolla_") and callable(spec) and not hasattr(spec, "corolla_kind")}


def hook_problems(callback: Any) -> list[str]:
    """What is wrong with the ``corolla_*`` methods of ``callback`` (an object or its class):
    a name that is no lifecycle hook (a misspelling is never called), or an argument the hook
    does not pass. An empty list when it has none, or only right ones."""
    lifecycle = lifecycle_hooks()
    problems = []
    for name in sorted(n for n in dir(callback) if n.startswith("corolla_") and callable(getattr(callback, n))):
        if name not in lifecycle:
            problems.append(f"method {name!r} is not a lifecycle hook (a misspelling is never called); "
                            f"lifecycle hooks are {', '.join(sorted(lifecycle))}")
            continue
        given = set(inspect.signature(lifecycle[name]).parameters)
        taken = [p.name for p in inspect.signature(getattr(callback, name)).parameters.values()
                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"]
        if extra := [p for p in taken if p not in given]:
            problems.append(f"{name} takes {', '.join(extra)}, which the hook does not pass (it passes {', '.join(sorted(given))})")
    return problems
