"""The shape of the code: plugins use only the public API, core layers import only the
layers below them, and no core module grows past 300 lines without saying why."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: core layers, each importing only the ones before it (``api`` and ``cli`` may import all)
LAYERS = ("plugin", "config", "data", "engine")


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``import x`` / ``from x import ...`` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)]
    return found


def _python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _python_files("plugins"), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path):
    package = path.relative_to(ROOT / "plugins").parts[0]
    allowed = ("corolla.api", f"corolla.plugins.{package}")
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for line, module in _imports(path)
        if (module == "corolla" or module.startswith("corolla.")) and not module.startswith(allowed)
    ]
    assert not bad, "plugins may import corolla.api and their own package only:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", _python_files("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_layers_import_only_the_layers_below(path):
    layer = path.relative_to(ROOT / "core").parts[0]
    if layer not in LAYERS:
        return
    below = LAYERS[: LAYERS.index(layer) + 1]
    bad = []
    for line, module in _imports(path):
        parts = module.split(".")
        if parts[0] != "corolla" or len(parts) < 2:
            continue
        if parts[1] == "plugins" or (parts[1] in (*LAYERS, "cli", "api", "testing") and parts[1] not in below):
            bad.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not bad, f"the {layer} layer may import {', '.join(below)} only:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", _python_files("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_modules_stay_small_or_say_why(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert lines <= 300 or "over 300 lines" in docstring, f"{path.relative_to(ROOT)} has {lines} lines"
