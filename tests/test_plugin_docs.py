"""docs/plugins.md stays true: its hook reference is the hookspecs' own, and its examples
install and pass the conformance kit."""
from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import pytest

from corolla import load_registry
from corolla.plugin.reference import hook_reference, update
from corolla.testing.conformance import check_backbone, check_transform

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"


def test_hook_reference_is_generated_from_the_hookspecs():
    assert update(DOC, check=True), (
        "docs/plugins.md is out of date with corolla/plugin/hookspecs.py; "
        "run: python -m corolla.plugin.reference docs/plugins.md")
    assert "#### `corolla_transforms() -> Components`" in hook_reference()


def test_readme_links_the_plugin_guide():
    assert "docs/plugins.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def _block(first_line: str) -> str:
    """The fenced Python block of the guide that starts with ``first_line``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return next(block for block in blocks if block.startswith(first_line))


def _install(site: Path, dist: str, entry_point: str, files: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    for relative, text in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text, encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[corolla.plugins]\n{entry_point}\n")
    monkeypatch.syspath_prepend(str(site))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_registry(strict=True)


def test_the_guides_augmentation_and_backbone_work_as_written(tmp_path, monkeypatch):
    registry = _install(tmp_path, "docs-examples", "my_aug = docs_my_aug\nmy_models = docs_my_models", {
        "docs_my_aug.py": _block("# my_aug.py"),
        "docs_my_models/__init__.py": _block("# my_models/__init__.py"),
        "docs_my_models/tiny.py": _block("# my_models/tiny.py"),
    }, monkeypatch)
    assert registry.resolve("backbone", "TinyNet").target == "docs_my_models.tiny:TinyNet"
    check_transform("RandomGrayscale", {"prob": 0.5}, registry=registry)
    check_backbone("TinyNet", {"width": 8}, registry=registry)


def test_the_guides_variant_family_registers_with_lazy_variants_as_written(tmp_path, monkeypatch):
    hooks = ("from corolla.api import hookimpl, lazy_variants\n\n@hookimpl\ndef corolla_backbones():\n"
             "    return lazy_variants(f'{__name__}.family')\n")
    registry = _install(tmp_path, "docs-family", "my_family = docs_my_family", {
        "docs_my_family/__init__.py": hooks,
        "docs_my_family/family.py": _block("# my_models/family.py"),
    }, monkeypatch)
    assert registry.resolve("backbone", "TinyNet_m").target == "docs_my_family.family:BUILDERS.TinyNet_m"
    assert "docs_my_family.family" not in sys.modules  # the names were read from the source
    check_backbone("TinyNet_s", registry=registry)
