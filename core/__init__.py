"""corolla: a pluggable image-classification toolkit on PaddlePaddle.

The names a plugin author or script needs; everything else lives in modules
with one job each (``corolla.plugin.hookspecs`` is the plugin contract).
"""
from importlib.metadata import PackageNotFoundError, version

from corolla.config.load import load_config
from corolla.config.planner import read_plan
from corolla.plugin.discovery import load_registry
from corolla.plugin.errors import (
    ComponentArgumentError,
    ConfigError,
    CorollaError,
    DataError,
    PluginError,
    UnknownComponentError,
)
from corolla.plugin.markers import hookimpl, hookspec
from corolla.plugin.lazy import lazy
from corolla.plugin.registry import Alias, Registry, current_key_path, current_registry

try:
    __version__ = version("corolla")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Alias",
    "ComponentArgumentError",
    "ConfigError",
    "CorollaError",
    "DataError",
    "PluginError",
    "Registry",
    "UnknownComponentError",
    "__version__",
    "current_key_path",
    "current_registry",
    "hookimpl",
    "hookspec",
    "lazy",
    "load_config",
    "load_registry",
    "read_plan",
]
