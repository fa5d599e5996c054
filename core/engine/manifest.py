"""The run manifest: what ran, with which config and which plugins, written beside the checkpoints."""
from __future__ import annotations

import datetime
import json
import platform
import sys
from pathlib import Path
from typing import Any, Mapping

import paddle

import corolla
from corolla.plugin.registry import Registry
from corolla.config.plan import config_components


def build_manifest(config: Mapping[str, Any], registry: Registry, **facts: Any) -> dict[str, Any]:
    """The merged config, every loaded plugin's distribution and version, and the
    plugin behind each component the config names."""
    used = []
    for kind, spec, _ in config_components(config):
        component = registry.resolve(kind, spec.name, key_path=spec.key_path)
        used.append({
            "kind": kind, "name": spec.name, "key_path": spec.key_path,
            "plugin": component.plugin.name, "distribution": component.plugin.dist, "version": component.plugin.version,
        })
    return {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "corolla": corolla.__version__,
        "paddle": paddle.__version__,
        "python": platform.python_version(),
        **facts,
        "plugins": [
            {"name": p.name, "module": p.value, "distribution": p.dist, "version": p.version} for p in registry.plugins
        ],
        "failed_plugins": [{"name": f.plugin.name, "error": f.error} for f in registry.failures],
        "components": used,
        "config": config,
    }


def write_manifest(directory: Path, manifest: Mapping[str, Any], name: str = "manifest.json") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return path
