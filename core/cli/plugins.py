"""``corolla plugins``: what is installed, and the parameters of one component."""
from __future__ import annotations

import argparse
import inspect

from corolla.plugin.arguments import signature_of
from corolla.cli.common import registry_from_args
from corolla.plugin.errors import UnknownComponentError
from corolla.plugin.registry import BUILTIN_DISTRIBUTION, KINDS, Component, Registry, close_names


def run(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    if args.kind and args.kind not in KINDS:
        raise UnknownComponentError(f"--kind {args.kind!r}: kinds are {', '.join(KINDS)}")
    if args.action == "show":
        if not args.name:
            raise UnknownComponentError("plugins show: which component? e.g. 'corolla plugins show ResNet50_vd'")
        print(show(registry, args.name, args.kind))
    else:
        print(listing(registry, args.kind))
    return 0


def listing(registry: Registry, kind: str | None = None) -> str:
    """A table of components: kind, name, plugin, distribution, version; then problems."""
    rows = [("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "VERSION")]
    for c in registry.components(kind):
        name = c.name
        if c.is_alias:
            name += f" -> {c.target.target} (deprecated)"
        elif registry.conflicts(c.kind, c.name):
            builtin = any(o.plugin.dist == BUILTIN_DISTRIBUTION for o in registry.conflicts(c.kind, c.name))
            name += "  [also given by another plugin; corolla's wins]" if builtin else "  [CONFLICT: given by several plugins]"
        rows.append((c.kind, name, c.plugin.name, c.plugin.dist, c.plugin.version))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.append(f"\n{len(rows) - 1} components from {len(registry.plugins)} plugins.")
    for failure in registry.failures:
        lines.append(f"FAILED: {failure.plugin.describe()}: {failure.error}")
    if registry.disabled:
        lines.append("disabled: " + ", ".join(registry.disabled))
    return "\n".join(lines)


def show(registry: Registry, name: str, kind: str | None = None) -> str:
    """Everything about the component(s) called ``name``: origin, parameters, docs."""
    kinds = [kind] if kind else [k for k in KINDS if name.rpartition(":")[2] in registry.names(k)]
    if not kinds:
        bare = name.rpartition(":")[2]
        close = [f"{c} ({k})" for k in KINDS for c in close_names(bare, registry.names(k), n=3)]
        hint = f" Close matches: {', '.join(close[:6])}." if close else ""
        raise UnknownComponentError(f"no component of any kind is called {name!r}.{hint} Run 'corolla plugins' to list them.")
    return "\n\n".join(_describe(registry.resolve(k, name)) for k in kinds)


def _describe(component: Component) -> str:
    factory = component.load()
    lines = [
        f"{component.name}  ({component.kind})",
        f"  plugin:       {component.plugin.name} = {component.plugin.value}",
        f"  distribution: {component.plugin.dist} {component.plugin.version}",
    ]
    if isinstance(component.target, str):
        lines.append(f"  defined at:   {component.target}")
    sig = signature_of(factory)
    if sig is not None:
        lines.append("  parameters:")
        params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY)]
        for p in params:
            if p.kind is p.VAR_KEYWORD:
                lines.append(f"    **{p.name}")
            else:
                default = "(required)" if p.default is p.empty else f"= {p.default!r}"
                lines.append(f"    {p.name} {default}")
        if not params:
            lines.append("    (none)")
    doc = inspect.getdoc(factory)
    if doc:
        lines.append("")
        lines.extend("  " + line for line in doc.splitlines())
    details = getattr(factory, "corolla_details", None)
    if callable(details):
        lines.append("")
        lines.extend("  " + line for line in details().splitlines())
    return "\n".join(lines)
