"""``corolla config``: check a config the way every verb will, and print it merged."""
from __future__ import annotations

import argparse

import attrs

from corolla.cli.common import plan_from_args
from corolla.config.load import dump_config


def run(args: argparse.Namespace) -> int:
    plan = plan_from_args(args)
    shown = {"Global": {**(plan.config.get("Global") or {}), **attrs.asdict(plan.settings)}}
    shown.update((k, v) for k, v in plan.config.items() if k != "Global")
    print(dump_config(shown), end="")
    ready = plan.ready_for()
    print(f"# checked: {len(list(plan.parts()))} components; ready for: {', '.join(ready) or 'nothing yet'}")
    return 0
