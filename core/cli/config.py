"""``corolla config``: print the merged config after validating it."""
from __future__ import annotations

import argparse

import attrs

from corolla.cli.common import config_from_args, registry_from_args
from corolla.config.load import dump_config
from corolla.config.plan import validate_components


def run(args: argparse.Namespace) -> int:
    config, settings = config_from_args(args)
    registry = registry_from_args(args, settings)
    validate_components(config, registry)
    raw_global = config.get("Global") or {}
    shown = {"Global": {**raw_global, **attrs.asdict(settings)}}
    shown.update((k, v) for k, v in config.items() if k != "Global")
    print(dump_config(shown), end="")
    return 0
