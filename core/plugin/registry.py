"""The registry: every component that the installed plugins give, and where it came from."""
from __future__ import annotations

import contextlib
import contextvars
import difflib
import pkgutil
import re
import warnings
from typing import Any, Callable, Iterable, Iterator, Mapping

import attrs

from corolla.plugin.arguments import check_arguments
from corolla.plugin.errors import (
    ComponentArgumentError,
    CorollaDeprecationWarning,
    CorollaError,
    PluginError,
    UnknownComponentError,
)
from corolla.plugin.hookspecs import Kind, kinds

#: The distribution of corolla's own plugins: its names win a clash with a third-party plugin.
BUILTIN_DISTRIBUTION = "corolla"
#: Component kind -> how its registration hook declares it (:mod:`corolla.plugin.hookspecs`).
KINDS: dict[str, Kind] = kinds()

#: the registry building a component, and the component's key path
_current: contextvars.ContextVar[tuple[Registry, str]] = contextvars.ContextVar("corolla_registry")


@attrs.frozen
class Alias:
    """A deprecated name that stands for ``target``, a component of the same kind."""

    target: str


@attrs.frozen
class PluginInfo:
    """A plugin: its entry-point name, the object it loads, and its distribution."""

    name: str
    value: str
    dist: str
    version: str

    def describe(self) -> str:
        return f"plugin {self.name!r} ({self.dist} {self.version})"


@attrs.define(eq=False)
class Component:
    """One named component of one kind, as given by one plugin."""

    kind: str
    name: str
    plugin: PluginInfo
    target: Any  # a factory, a lazy "module:attr" reference, or an Alias
    _loaded: Callable[..., Any] | None = attrs.field(default=None, init=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin.dist}:{self.name}"

    @property
    def is_alias(self) -> bool:
        return isinstance(self.target, Alias)

    def describe(self) -> str:
        return f"{self.kind} {self.name!r} from {self.plugin.describe()}"

    def load(self) -> Callable[..., Any]:
        """The factory, importing it first if the plugin gave a lazy reference."""
        if self._loaded is None:
            if isinstance(self.target, str):
                try:
                    self._loaded = pkgutil.resolve_name(self.target)
                except Exception as exc:  # any import error belongs to the plugin
                    raise PluginError(
                        f"Error importing {self.describe()}: lazy reference "
                        f"{self.target!r} failed: {type(exc).__name__}: {exc}"
                    ) from exc
            else:
                self._loaded = self.target
        return self._loaded


@attrs.frozen
class PluginFailure:
    """A plugin that could not be imported or registered, and why."""

    plugin: PluginInfo
    error: str


def _normalise_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Registry:
    """Components by kind and name, with their plugin and distribution.

    Built by :func:`corolla.discovery.load_registry`. ``prefer`` maps a bare
    component name to the distribution that wins when several plugins give it.
    """

    def __init__(
        self,
        plugin_manager: Any,
        plugins: Iterable[PluginInfo],
        components: Iterable[Component],
        *,
        failures: Iterable[PluginFailure] = (),
        disabled: Iterable[str] = (),
        prefer: Mapping[str, str] | None = None,
    ) -> None:
        self.plugin_manager = plugin_manager
        self.plugins = list(plugins)
        self.failures = list(failures)
        self.disabled = sorted(disabled)
        self.prefer = dict(prefer or {})
        self._by_kind: dict[str, dict[str, list[Component]]] = {kind: {} for kind in KINDS}
        self._noticed: set[tuple[str, str]] = set()
        for component in components:
            self._by_kind[component.kind].setdefault(component.name, []).append(component)

    @property
    def hook(self) -> Any:
        """The lifecycle hooks, called as ``registry.hook.corolla_epoch_end(...)``."""
        return self.plugin_manager.hook

    def components(self, kind: str | None = None) -> Iterator[Component]:
        """Every component (of one kind), sorted by kind then name."""
        kinds = [kind] if kind else list(KINDS)
        for k in kinds:
            for name in sorted(self._by_kind[k], key=str.lower):
                yield from self._by_kind[k][name]

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind], key=str.lower)

    def conflicts(self, kind: str, name: str) -> list[Component]:
        """All components giving ``name`` when more than one plugin does, else []."""
        found = self._by_kind[kind].get(name, [])
        return found if len(found) > 1 else []

    def resolve(self, kind: str, name: str, *, key_path: str = "") -> Component:
        """The component that ``name`` (bare or ``dist:name``) means, aliases followed."""
        if kind not in KINDS:
            raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        where = f"{key_path}: " if key_path else ""
        dist, _, bare = name.rpartition(":")
        candidates = self._by_kind[kind].get(bare, [])
        if dist:
            candidates = [c for c in candidates if _normalise_dist(c.plugin.dist) == _normalise_dist(dist)]
        elif candidates and bare in self.prefer:
            wanted = _normalise_dist(self.prefer[bare])
            preferred = [c for c in candidates if _normalise_dist(c.plugin.dist) == wanted]
            if not preferred:
                given = sorted({c.plugin.dist for c in candidates})
                close = difflib.get_close_matches(self.prefer[bare], given, n=1, cutoff=0.6)
                raise PluginError(
                    f"{where}Global.plugins.prefer.{bare} (or --prefer) names distribution {self.prefer[bare]!r}, which "
                    f"does not give {kind} {bare!r}; it is given by {', '.join(given)}."
                    + (f" Did you mean {close[0]!r}?" if close else "")
                )
            candidates = preferred
        if not candidates:
            raise UnknownComponentError(where + self._unknown_message(kind, name))
        if len(candidates) > 1:
            candidates = self._builtin_first(kind, bare, candidates)
        if len(candidates) > 1:
            listed = "; ".join(f"{c.qualified_name!r} from {c.plugin.describe()}" for c in candidates)
            raise PluginError(
                f"{where}{kind} {bare!r} is given by {len(candidates)} plugins: {listed}. "
                f"Name one as 'DIST:{bare}', or say which wins with "
                f"Global.plugins.prefer.{bare}=DIST (CLI: --prefer {bare}=DIST)."
            )
        component = candidates[0]
        if component.is_alias:
            target = component.target.target
            warnings.warn(
                f"{where}{kind} name {bare!r} is deprecated; use {target!r}.",
                CorollaDeprecationWarning,
                stacklevel=2,
            )
            qualified = f"{component.plugin.dist}:{target}" if dist else target
            return self.resolve(kind, qualified, key_path=key_path)
        return component

    def build(self, kind: str, name: str, params: Mapping[str, Any] | None = None, *, key_path: str = "") -> Any:
        """Resolve ``name``, check ``params`` against its signature, and call it (see :meth:`create`)."""
        component = self.resolve(kind, name, key_path=key_path)
        params = check_arguments(component.load(), dict(params or {}), component=component.describe(), key_path=key_path)
        return self.create(component, params, key_path=key_path)

    def create(self, component: Component, params: Mapping[str, Any], *, key_path: str = "") -> Any:
        """Call ``component``'s factory with ``params`` (already checked).

        While the factory runs, :func:`current_registry` returns this registry, so
        that a component can build its own sub-components (a ``DistillationModel``
        its teacher and student), and :func:`current_key_path` its ``key_path`` (for
        their key paths and messages). A factory rejecting a value with ``ValueError``
        or ``TypeError`` becomes a :class:`ComponentArgumentError` naming the key path.
        """
        token = _current.set((self, key_path))
        try:
            return component.load()(**params)
        except CorollaError:
            raise
        except (ValueError, TypeError) as exc:
            where = f"{key_path}: " if key_path else ""
            raise ComponentArgumentError(f"{where}{component.describe()}: {exc}") from exc
        finally:
            _current.reset(token)

    @contextlib.contextmanager
    def callbacks(self, callbacks: Iterable[Any]) -> Iterator[None]:
        """Register ``callbacks`` (objects with lifecycle-hook methods) for the block:
        what the engine does with ``Global.callbacks``, and how a script adds its own."""
        registered = []
        try:
            for callback in callbacks:
                self.plugin_manager.register(callback)
                registered.append(callback)
            yield
        finally:
            for callback in registered:
                self.plugin_manager.unregister(callback)

    def _builtin_first(self, kind: str, name: str, candidates: list[Component]) -> list[Component]:
        """When corolla itself gives a clashing bare name, the built-in wins (shipped configs
        keep working whatever is installed), with one notice naming the other plugins and
        how to pick one; a clash between third-party plugins stays an error."""
        builtin = [c for c in candidates if c.plugin.dist == BUILTIN_DISTRIBUTION]
        if len(builtin) != 1:
            return candidates
        others = [c for c in candidates if c is not builtin[0]]
        if (kind, name) not in self._noticed:
            self._noticed.add((kind, name))
            listed = ", ".join(c.plugin.describe() for c in others)
            warnings.warn(
                f"{kind} {name!r} is also given by {listed}; using corolla's own. To use another, name it "
                f"'{others[0].plugin.dist}:{name}' or set Global.plugins.prefer.{name}={others[0].plugin.dist} "
                f"(CLI: --prefer {name}={others[0].plugin.dist})",
                UserWarning,
                stacklevel=3,
            )
        return builtin

    def _unknown_message(self, kind: str, name: str) -> str:
        known = self.names(kind)
        close = close_names(name.rpartition(":")[2], known)
        dists = sorted({f"{p.dist} {p.version}" for p in self.plugins})
        msg = f"unknown {kind} {name!r}."
        if close:
            msg += f" Close matches: {', '.join(close)}."
        msg += (
            f" Searched {len(known)} {kind} names from {len(self.plugins)} plugins "
            f"of {len(dists)} distributions ({', '.join(dists) or 'none'})."
        )
        if self.failures:
            msg += " Plugins that failed to load: " + ", ".join(f.plugin.describe() for f in self.failures) + "."
        if self.disabled:
            msg += " Disabled plugins: " + ", ".join(self.disabled) + "."
        msg += " Run 'corolla plugins' to list what is installed."
        return msg


def close_names(name: str, known: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` of ``known`` that ``name`` may have meant, also in another case (``celoss``: ``CELoss``)."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name, known, n=n, cutoff=0.6)
    close += [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)]
    return list(dict.fromkeys(close))[:n]


def current_registry() -> Registry:
    """The registry building the current component (see :meth:`Registry.build`)."""
    return _building("current_registry")[0]


def current_key_path() -> str:
    """The key path of the component being built (``Arch``, ``Arch.models.0.Teacher``), or
    ``""`` when it was built without one (see :meth:`Registry.build`)."""
    return _building("current_key_path")[1]


def _building(caller: str) -> tuple[Registry, str]:
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError(f"{caller}() is only available while Registry.build runs") from None
