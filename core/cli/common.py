"""What the verbs share: the plan of ``-c CONFIG -o ...`` and the registry from the plugin flags."""
from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from corolla.config.load import Config, load_config
from corolla.config.plan import Plan
from corolla.config.planner import read_plan
from corolla.config.sections import plugin_registry
from corolla.plugin.errors import ConfigError
from corolla.plugin.registry import Registry


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The checked plan of the merged config of ``-c`` and ``-o``."""
    config = load_config(args.config, args.override)
    return read_plan(config, registry_from_args(args, config))


def registry_from_args(args: argparse.Namespace, config: Config | None = None) -> Registry:
    """A registry honouring ``Global.plugins`` (when a config is given) and the CLI flags."""
    prefer: dict[str, str] = {}
    for item in args.prefer:
        name, sep, dist = item.partition("=")
        if not sep or not name or not dist:
            raise ConfigError(f"--prefer {item!r}: expected NAME=DIST")
        prefer[name] = dist
    return plugin_registry(config or {}, disabled=[flag.removeprefix("no:") for flag in args.plugin_flags],
                           prefer=prefer, strict=args.strict_plugins)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (what timeout, docker stop and schedulers send) stop the command as Ctrl-C
    does: a :class:`KeyboardInterrupt` where the main thread is. Paddle installs its own handler
    when imported (a C++ stack, exit 143): call this after importing it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
