"""What the conformance checks share: the error, building a component, and seeded calls."""
from __future__ import annotations

import random
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from corolla.data.randomness import reseed
from corolla.plugin.discovery import PluginImportWarning, load_registry
from corolla.plugin.registry import Registry, _normalise_dist

_registry: Registry | None = None


class ConformanceError(AssertionError):
    """A component broke its kind's contract; the message names it and the rule."""


def default_registry() -> Registry:
    """The installed plugins' registry, built once. Not strict: one broken plugin must not fail
    every distribution's conformance suite; :func:`require_loaded` makes it an error for the
    distribution under test, and another's failure stays a :class:`PluginImportWarning`."""
    global _registry
    if _registry is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a clash with a built-in name: the notice is for users
            warnings.simplefilter("default", PluginImportWarning)  # ... but a broken plugin is for the tester
            _registry = load_registry()
    return _registry


def require_loaded(registry: Registry, distribution: str) -> None:
    """Raise :class:`ConformanceError` if a plugin of ``distribution`` failed to import or register."""
    wanted = _normalise_dist(distribution)
    failed = [f for f in registry.failures if _normalise_dist(f.plugin.dist) == wanted]
    if failed:
        raise ConformanceError("; ".join(f"{f.plugin.describe()} failed to import or register: {f.error}"
                                         for f in failed))


def component(registry: Registry | None, kind: str, name: str, params: Mapping[str, Any] | None) -> tuple[Any, str]:
    """``(built component, "kind 'Name' from plugin ... (dist version)")``, built as a config would build it,
    from ``registry`` (default: :func:`default_registry`)."""
    registry = registry or default_registry()
    found = registry.resolve(kind, name)
    return registry.build(kind, name, dict(params or {}), key_path=f"<conformance {kind} {name}>"), found.describe()


def must(condition: Any, where: str, rule: str) -> None:
    """Raise :class:`ConformanceError` ``"where: rule"`` unless ``condition``."""
    if not condition:
        raise ConformanceError(f"{where}: {rule}")


def seeded(call: Callable[[], Any], seed: int, *, stray: int) -> Any:
    """``call()`` with corolla's augmentation generator seeded by ``seed`` and NumPy's and
    Python's global generators by ``stray``: a component whose result depends on ``stray``
    draws from a generator that corolla does not seed per epoch and worker."""
    reseed(seed)
    np.random.seed(stray)
    random.seed(stray)
    return call()


def same(a: Any, b: Any) -> bool:
    """Equal arrays (NaN equal to NaN), tuples, lists, dicts and scalars, recursively."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return bool(a == b)


def deterministic(call: Callable[[], Any], where: str, *, seeds: int = 4) -> bool:
    """Check that ``call`` gives the same result for the same corolla seed whatever the other
    generators hold; return whether it also gives one result for every seed (no randomness)."""
    results = []
    for seed in range(seeds):
        first, again = seeded(call, seed, stray=2 * seed + 1), seeded(call, seed, stray=2 * seed + 2)
        must(same(first, again), where,
             f"gave two results under the same seed ({seed}): draw random numbers from corolla.api.generator() "
             "(reseeded per epoch and worker), not numpy.random, random or paddle")
        results.append(first)
    return all(same(results[0], r) for r in results[1:])
