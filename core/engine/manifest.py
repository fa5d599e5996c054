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
from corolla.config.plan import Plan
from corolla.data.atomic import write_text


def build_manifest(plan: Plan, **facts: Any) -> dict[str, Any]:
    """The merged config, every loaded plugin's distribution and version, and the
    plugin behind each component the plan uses."""
    registry = plan.registry
    config = plan.config
    used = [
        {"kind": part.kind, "name": part.name, "key_path": part.key_path, "plugin": part.component.plugin.name,
         "distribution": part.component.plugin.dist, "version": part.component.plugin.version}
        for part in plan.parts()
    ]
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
    """Write the manifest atomically; a resumed run keeps the earlier runs' records under ``history``."""
    path = directory / name
    record = dict(manifest)
    if record.get("resumed_from") and path.is_file():
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            earlier = {}
        record["history"] = [*earlier.pop("history", []), {k: earlier.get(k) for k in ("started", "command", "resumed_from")}]
    return write_text(path, json.dumps(record, indent=2, default=str) + "\n")
