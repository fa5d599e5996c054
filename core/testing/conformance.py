"""The conformance kit: does a component keep its kind's contract (:mod:`corolla.plugin.hookspecs`)?

Plain functions for a plugin's own tests, one per kind; each builds the component by
its config name through the registry (so its registration is tested too) and raises
:class:`ConformanceError`, naming the component, its distribution and the broken rule.
:func:`components_of` gives qualified names (``"my-models:TinyNet"``), so that a name
that another plugin also gives still means this distribution's component::

    import pytest
    from corolla.testing.conformance import check_component, components_of

    @pytest.mark.parametrize("kind, name", components_of("my-models"))
    def test_conformance(kind, name):
        check_component(kind, name)

``check_component(kind, name, params, **options)`` passes ``options`` to the kind's
check: :func:`check_backbone`, :func:`check_transform`, :func:`check_batch_transform`,
:func:`check_loss`, :func:`check_dataset`, :func:`check_metric`, :func:`check_callback`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from corolla.plugin.lifecycle import hook_problems, lifecycle_hooks
from corolla.plugin.registry import Registry, _normalise_dist
from corolla.testing.conformance_data import check_batch_transform, check_dataset, check_transform
from corolla.testing.conformance_models import check_backbone, check_loss, check_metric
from corolla.testing.conformance_rules import ConformanceError, component, default_registry, must, require_loaded

__all__ = [
    "CHECKS",
    "ConformanceError",
    "check_backbone",
    "check_batch_transform",
    "check_callback",
    "check_component",
    "check_dataset",
    "check_loss",
    "check_metric",
    "check_transform",
    "components_of",
    "default_registry",
]

def components_of(distribution: str, registry: Registry | None = None) -> list[tuple[str, str]]:
    """``(kind, "DIST:NAME")`` of every component that ``distribution`` gives (aliases aside),
    for ``pytest.mark.parametrize``; an error when it gives none (not installed?). The name is
    qualified so that the check builds this distribution's component even when another
    plugin (or corolla itself) gives the same bare name. A plugin of ``distribution`` that
    failed to import is an error here; another distribution's stays a warning."""
    registry = registry or default_registry()
    require_loaded(registry, distribution)
    wanted = _normalise_dist(distribution)
    found = [(c.kind, c.qualified_name) for c in registry.components()
             if _normalise_dist(c.plugin.dist) == wanted and not c.is_alias]
    if not found:
        dists = sorted({p.dist for p in registry.plugins})
        raise ConformanceError(f"distribution {distribution!r} gives no components; installed: {', '.join(dists)}. "
                               "Is it installed (pip install -e .) with a 'corolla.plugins' entry point?")
    return found


def check_callback(name: str, params: Mapping[str, Any] | None = None, *, registry: Registry | None = None) -> None:
    """A callback: an object whose ``corolla_*`` methods are lifecycle hooks by their exact
    names, each taking only arguments its hook passes (``run``, ``epoch``, ``step``, ``logs``,
    ``metrics``); at least one; no registration hooks (those belong to the plugin module)."""
    callback, where = component(registry, "callback", name, params)
    hooks = [n for n in dir(callback) if n.startswith("corolla_") and callable(getattr(callback, n))]
    must(hooks, where, f"implements no lifecycle hook; expected methods named {', '.join(sorted(lifecycle_hooks()))}")
    problems = hook_problems(callback)
    must(not problems, where, "; ".join(problems))


#: kind -> its check
CHECKS: dict[str, Callable[..., None]] = {
    "backbone": check_backbone,
    "transform": check_transform,
    "batch_transform": check_batch_transform,
    "loss": check_loss,
    "dataset": check_dataset,
    "metric": check_metric,
    "callback": check_callback,
}


def check_component(kind: str, name: str, params: Mapping[str, Any] | None = None, **options: Any) -> None:
    """Run the check of ``kind`` on component ``name`` built with ``params``; ``options``
    go to that check (see each ``check_*``). A ``DIST:NAME`` whose distribution has a plugin
    that failed to import is an error naming that failure."""
    if kind not in CHECKS:
        raise ConformanceError(f"{kind} {name!r}: the conformance kit has no check for the {kind} kind "
                               f"(it checks {', '.join(CHECKS)}); test it with your own tests")
    distribution = name.rpartition(":")[0]
    if distribution:
        require_loaded(options.get("registry") or default_registry(), distribution)
    CHECKS[kind](name, params, **options)
