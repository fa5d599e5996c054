"""The hook reference of ``docs/plugins.md``, generated from :mod:`corolla.plugin.hookspecs`.

``python -m corolla.plugin.reference docs/plugins.md`` rewrites the part of the file between
:data:`BEGIN` and :data:`END`; ``--check`` only says whether it is up to date (a test runs it),
so the documentation never drifts from the contract it documents.
"""
from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from corolla.plugin import hookspecs

BEGIN = "<!-- hook reference: generated from corolla/plugin/hookspecs.py by `python -m corolla.plugin.reference docs/plugins.md`; do not edit by hand -->"
END = "<!-- end of the generated hook reference -->"
#: the protocols a factory's product follows, in the order a config names them
PROTOCOLS = ("Loss", "Transform", "BatchTransform", "Dataset", "Sampler", "Metric", "LrSchedule", "PostProcess",
             "PredictingModel", "Composite")


def hook_reference() -> str:
    """The reference, in Markdown: registration hooks (with where each kind sits in a config),
    the protocols of what factories return, the lifecycle hooks and the ``Run`` they receive."""
    kinds = list(hookspecs.kinds().values())
    lines = ["### Registration hooks", "",
             "| hook | kind | named at (shape) | the engine takes out | the engine passes |", "|---|---|---|---|---|"]
    for kind in kinds:
        places = "<br>".join(f"`{path}` ({shape})" for path, shape in kind.places)
        lines.append(f"| `{kind.hook}` | {kind.name} | {places} | {_codes(kind.consumed)} | {_codes(kind.injected)} |")
    lines.append("")
    for kind in kinds:
        lines += _entry(getattr(hookspecs, kind.hook))
    lines += ["### What factories return", ""]
    for name in PROTOCOLS:
        protocol = getattr(hookspecs, name)
        lines += [f"#### `{name}`", "", _markdown(inspect.getdoc(protocol)), ""]
        for member, value in vars(protocol).items():
            if callable(value) and not member.startswith("_") and inspect.getdoc(value):
                lines += [f"- `{member}{_signature(value)}`: {_markdown(inspect.getdoc(value))}"]
        if any(callable(v) and not m.startswith("_") and inspect.getdoc(v) for m, v in vars(protocol).items()):
            lines.append("")
    lines += ["### Lifecycle hooks", ""]
    for name, function in vars(hookspecs).items():
        if name.startswith("corolla_") and callable(function) and not hasattr(function, "corolla_kind"):
            lines += _entry(function)
    lines += ["#### `Run`", "", "What every lifecycle hook receives as `run` (its fields, as the source declares them):", "",
              "```python", _fields_source(hookspecs.Run), "```"]
    return "\n".join(lines).rstrip() + "\n"


def _entry(function: Callable[..., Any]) -> list[str]:
    return [f"#### `{function.__name__}{_signature(function)}`", "", _markdown(inspect.getdoc(function)), ""]


def _signature(function: Callable[..., Any]) -> str:
    signature = inspect.signature(function)
    shown = [f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name
             for p in signature.parameters.values() if p.name != "self"]
    returned = "" if signature.return_annotation is signature.empty else f" -> {signature.return_annotation}"
    return f"({', '.join(shown)}){returned}"


def _codes(names: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in names) or "-"


def _markdown(text: str | None) -> str:
    """reStructuredText roles and literals as Markdown; ``::`` blocks as fenced code."""
    text = re.sub(r":(?:class|func|mod|meth|data|attr):`~?([^`]+)`", r"`\1`", text or "")
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    out: list[str] = []
    in_block = False
    for line in text.splitlines():
        if in_block and line.strip() and not line.startswith("    "):
            out.append("```")
            in_block = False
        if in_block:
            out.append(line[4:])
        elif line.rstrip().endswith("::"):
            out += [line.rstrip()[:-1], "", "```"]
            in_block = True
        else:
            out.append(line)
    if in_block:
        out.append("```")
    return "\n".join(line for line in out if not (in_block and line == "")).strip()


def _fields_source(cls: type) -> str:
    """The source of ``cls`` without its docstring."""
    source = inspect.getsource(cls)
    body = ast.parse(source).body[0].body
    lines = source.splitlines()
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        del lines[body[0].lineno - 1:body[0].end_lineno]
    kept = [line for line in lines if not line.startswith("@")]
    return "\n".join(line for i, line in enumerate(kept) if line.strip() or i != 1).rstrip()


def update(path: str | Path, *, check: bool = False) -> bool:
    """Write the reference between the markers of ``path``; return whether it was up to date."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: the markers of the generated hook reference are missing:\n{BEGIN}\n{END}")
    head, rest = text.split(BEGIN, 1)
    old, tail = rest.split(END, 1)
    new = f"\n\n{hook_reference()}\n"
    if old == new:
        return True
    if not check:
        path.write_text(f"{head}{BEGIN}{new}{END}{tail}", encoding="utf-8")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corolla.plugin.reference", description=__doc__.splitlines()[0])
    parser.add_argument("document", help="the Markdown file holding the markers (docs/plugins.md)")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the file is out of date")
    args = parser.parse_args(argv)
    fresh = update(args.document, check=args.check)
    print(f"{args.document}: {'up to date' if fresh else ('out of date' if args.check else 'rewritten')}")
    return 0 if fresh or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
