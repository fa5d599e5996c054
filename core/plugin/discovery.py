"""Find plugins through the ``corolla.plugins`` entry-point group and build the registry."""
from __future__ import annotations

import warnings
from importlib import metadata
from typing import Any, Iterable, Mapping

import pluggy
from packaging.requirements import InvalidRequirement, Requirement

from corolla.plugin import hookspecs
from corolla.plugin.errors import PluginError
from corolla.plugin.markers import PROJECT
from corolla.plugin.registry import KINDS, Alias, Component, PluginFailure, PluginInfo, Registry

ENTRY_POINT_GROUP = "corolla.plugins"


def check_requirements(requirements: Iterable[str], *, key_path: str) -> None:
    """Each requirement (``"my-models>=0.2"``, PEP 508) must be met by an installed
    distribution: an error names what is missing or too old and how to install it."""
    problems = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise PluginError(f"{key_path}: {text!r} is not a requirement like 'my-models>=0.2': {exc}") from None
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} is not installed")
            continue
        if installed not in requirement.specifier:
            problems.append(f"{requirement.name} {installed} is installed, {requirement.specifier} is required")
    if problems:
        wanted = " ".join(repr(r) for r in requirements)
        raise PluginError(f"{key_path}: {'; '.join(problems)}. Install them with: pip install {wanted}")


class PluginImportWarning(UserWarning):
    """A plugin failed to import or register; the others keep working."""


def load_registry(
    *,
    disabled: Iterable[str] = (),
    strict: bool = False,
    prefer: Mapping[str, str] | None = None,
    extra_plugins: Iterable[tuple[str, Any]] = (),
) -> Registry:
    """Import every plugin of the ``corolla.plugins`` group and collect its components.

    ``disabled`` names plugins (entry-point names) that are not even imported.
    A plugin that fails to import or register is reported as a
    :class:`PluginImportWarning` and left out; with ``strict`` it raises
    :class:`PluginError`. ``extra_plugins`` are ``(name, object)`` pairs
    registered as if they came from entry points (useful in tests and scripts).
    """
    blocked = {name.removeprefix("no:") for name in disabled}
    manager = _PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)

    plugins: list[PluginInfo] = []
    components: list[Component] = []
    failures: list[PluginFailure] = []

    def fail(info: PluginInfo, exc: BaseException, what: str) -> None:
        message = f'Error {what} plugin "{info.name}" ({info.value}, distribution {info.dist} {info.version}): {type(exc).__name__}: {exc}'
        if strict:
            raise PluginError(message) from exc
        warnings.warn(message, PluginImportWarning, stacklevel=3)
        failures.append(PluginFailure(info, f"{type(exc).__name__}: {exc}"))

    candidates: list[tuple[PluginInfo, Any]] = []
    for ep in _entry_points():
        dist = ep.dist
        info = PluginInfo(
            name=ep.name,
            value=ep.value,
            dist=dist.metadata["Name"] if dist is not None else "unknown",
            version=dist.version if dist is not None else "unknown",
        )
        if ep.name in blocked:
            continue
        try:
            candidates.append((info, ep.load()))
        except Exception as exc:  # a broken plugin must not take the others down
            fail(info, exc, "importing")
    for name, obj in extra_plugins:
        candidates.append((PluginInfo(name, repr(obj), "<registered>", "-"), obj))

    for info, obj in candidates:
        if manager.is_registered(obj) or manager.get_plugin(info.name) is not None:
            continue  # the same distribution seen twice on sys.path
        try:
            manager.register(obj, name=info.name)
            _check_hook_names(manager, obj)
            given = list(_collect_components(manager, obj, info))
        except Exception as exc:
            if manager.is_registered(obj):
                manager.unregister(obj)
            fail(info, exc, "registering")
            continue
        plugins.append(info)
        components.extend(given)

    return Registry(
        manager,
        plugins,
        components,
        failures=failures,
        disabled=blocked,
        prefer=prefer,
    )


class _PluginManager(pluggy.PluginManager):
    """Also takes unmarked ``corolla_*`` functions as hook implementations, as pytest
    does for ``pytest_*``: a forgotten ``@hookimpl`` must not silently drop a plugin."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("corolla_") and callable(getattr(plugin, name, None)):
            return {}
        return opts


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen: set[tuple[str, str]] = set()
    unique = []
    for ep in eps:
        if (ep.name, ep.value) not in seen:
            seen.add((ep.name, ep.value))
            unique.append(ep)
    return unique


def _check_hook_names(manager: pluggy.PluginManager, plugin: Any) -> None:
    """A ``corolla_*`` hookimpl with no matching spec is a typo: say so."""
    for hook_caller in manager.get_hookcallers(plugin) or []:
        if hook_caller.spec is None:
            known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("corolla_")))
            raise PluginError(f"unknown hook {hook_caller.name!r}; corolla's hooks are: {known}")


def _collect_components(manager: pluggy.PluginManager, plugin: Any, info: PluginInfo) -> Iterable[Component]:
    for kind in KINDS.values():
        hook_name = kind.hook
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue
            given = impl.function()
            if not isinstance(given, Mapping):
                raise PluginError(f"{hook_name}() must return a mapping of name -> factory, got {type(given).__name__}")
            for name, target in given.items():
                if not isinstance(name, str) or not (callable(target) or isinstance(target, (str, Alias))):
                    raise PluginError(
                        f"{hook_name}() gave {name!r}: {target!r}; expected a callable, "
                        "a 'module:attribute' reference or corolla.Alias"
                    )
                yield Component(kind.name, name, info, target)
