"""``corolla new-plugin NAME``: a ready-to-install plugin distribution, one component per kind.

It writes ``NAME/`` with a ``pyproject.toml`` (the ``corolla.plugins`` entry point), the
package (lazy registration, one module per component), a conformance test
(:mod:`corolla.testing.conformance`) and ``example.yaml``, the quickstart's config using the
new components. Installed, its tests pass and ``corolla train -c example.yaml`` trains.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from string import Template
from typing import Any, Sequence

from corolla.config.load import dump_config, load_config, shipped_configs
from corolla.plugin.errors import ConfigError
from corolla.testing.scaffold_templates import COMPONENTS, HOOK, INIT, PYPROJECT, README, TEST

#: the kinds a scaffold can give, in the order they are written
KINDS: tuple[str, ...] = tuple(COMPONENTS)


def new_plugin(name: str, folder: str | os.PathLike[str] = ".", kinds: Sequence[str] = KINDS) -> Path:
    """Write the distribution ``name`` (its import name: ``name`` with ``_`` for ``-``) into
    ``folder/name`` and return that folder; it must not exist yet, or be empty."""
    module = name.replace("-", "_").lower()
    if not re.fullmatch(r"[a-z][a-z0-9_]*", module):
        raise ConfigError(f"new-plugin {name!r}: expected a name of letters, digits, '-' and '_', starting with a letter")
    unknown = [kind for kind in kinds if kind not in COMPONENTS]
    if unknown or not kinds:
        raise ConfigError(f"new-plugin --kind {','.join(kinds)}: {', '.join(unknown) or 'no kind'}; "
                          f"expected some of {','.join(KINDS)}")
    target = Path(folder) / name
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"new-plugin: {target} exists and is not empty; choose another name or folder")
    prefix = "".join(part.capitalize() for part in re.split(r"[-_]+", module))
    names = {kind: prefix + COMPONENTS[kind][2] for kind in KINDS if kind in kinds}
    values = {"dist": name, "module": module, "names": ", ".join(f"{n} ({k.replace('_', ' ')})" for k, n in names.items())}
    hooks = "".join(Template(HOOK).substitute(hook=COMPONENTS[k][1], file=COMPONENTS[k][0], name=n) for k, n in names.items())
    files = {
        "pyproject.toml": Template(PYPROJECT).substitute(values),
        "README.md": Template(README).substitute(values),
        f"{module}/__init__.py": Template(INIT).substitute(values, hooks=hooks),
        "tests/test_conformance.py": Template(TEST).substitute(values),
        "example.yaml": example_config(name, names),
    }
    for kind, component in names.items():
        files[f"{module}/{COMPONENTS[kind][0]}.py"] = Template(COMPONENTS[kind][3]).substitute(values, name=component)
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def example_config(dist: str, names: dict[str, str]) -> str:
    """The quickstart's config (``configs/quickstart.yaml``) using ``names`` (kind -> component)."""
    config: dict[str, Any] = load_config(shipped_configs() / "quickstart.yaml")
    config["Global"].update(epochs=5, output_dir=f"./corolla_quickstart/{dist}_output/")
    config["Global"]["plugins"] = {"require": [dist]}
    if "backbone" in names:
        config["Arch"]["name"] = names["backbone"]
    if "loss" in names:
        config["Loss"] = {"Train": [{names["loss"]: None}], "Eval": [{names["loss"]: None}]}
    train = config["DataLoader"]["Train"]["dataset"]
    if "transform" in names:
        ops = train["transform_ops"]
        ops.insert(next(i for i, op in enumerate(ops) if "NormalizeImage" in op), {names["transform"]: None})
    if "batch_transform" in names:
        train["batch_transform_ops"] = [{names["batch_transform"]: None}]
    if "dataset" in names:
        for mode in ("Train", "Eval"):
            config["DataLoader"][mode]["dataset"]["name"] = names["dataset"]
    if "metric" in names:
        config["Metric"]["Eval"].append({names["metric"]: None})
    if "callback" in names:
        config["Global"]["callbacks"] = [{"ConsoleLogger": None}, {"MetricsLog": None}, {names["callback"]: None}]
    header = (f"# The quickstart's config with {dist}'s components. After `corolla quickstart` (which makes\n"
              "# ./corolla_quickstart/data) and `pip install .`: corolla train -c example.yaml\n")
    return header + dump_config(config)
