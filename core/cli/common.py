"""What the verbs share: reading the config and building the registry from CLI flags."""
from __future__ import annotations

import argparse
from typing import Any

from corolla.config.load import load_config
from corolla.plugin.discovery import load_registry
from corolla.plugin.errors import ConfigError
from corolla.plugin.registry import Registry
from corolla.config.sections import GlobalSection, read_global


def config_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], GlobalSection]:
    """The merged config of ``-c`` and ``-o``, and its validated ``Global`` section."""
    config = load_config(args.config, args.override)
    return config, read_global(config)


def registry_from_args(args: argparse.Namespace, settings: GlobalSection | None = None) -> Registry:
    """A registry honouring ``Global.plugins`` (when a config is given) and the CLI flags."""
    disabled = [flag.removeprefix("no:") for flag in args.plugin_flags]
    prefer: dict[str, str] = {}
    strict = args.strict_plugins
    if settings is not None:
        disabled += settings.plugins.disable
        prefer.update(settings.plugins.prefer)
        strict = strict or settings.plugins.strict
    for item in args.prefer:
        name, sep, dist = item.partition("=")
        if not sep or not name or not dist:
            raise ConfigError(f"--prefer {item!r}: expected NAME=DIST")
        prefer[name] = dist
    return load_registry(disabled=disabled, strict=strict, prefer=prefer)
