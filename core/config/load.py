"""Load PaddleClas-style YAML configs and apply ``-o Dotted.path=value`` overrides."""
from __future__ import annotations

import copy
import difflib
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs
import yaml

from corolla.plugin.errors import ConfigError

#: The sections of a PaddleClas 2.x config, plus the ones corolla adds.
SECTIONS = ("Global", "Arch", "Loss", "Optimizer", "DataLoader", "Metric", "Infer", "AMP", "EMA")


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a YAML config with ``yaml.safe_load`` and apply overrides in order.

    Unknown top-level sections are errors that suggest the closest known one.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    config = parse_yaml(text, source=str(path))
    for override in overrides:
        apply_override(config, override)
    check_sections(config, source=str(path))
    return config


def parse_yaml(text: str, *, source: str) -> dict[str, Any]:
    """Parse config text; errors name ``source:line:column``."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (Global, Arch, ...), found {type(data).__name__}")
    return data


def check_sections(config: Mapping[str, Any], *, source: str) -> None:
    """A misspelt section is an error; a section corolla does not use is a warning."""
    for key in config:
        if key in SECTIONS:
            continue
        close = difflib.get_close_matches(str(key), SECTIONS, n=1, cutoff=0.75)
        if close:
            raise ConfigError(f"{source}: unknown section {key!r}. Did you mean {close[0]!r}? Sections: {', '.join(SECTIONS)}.")
        warnings.warn(f"{source}: section {key!r} is not used by corolla and is ignored", UserWarning, stacklevel=3)


def parse_override(text: str) -> tuple[list[str], Any, bool]:
    """Split ``[+]A.b.0.c=value`` into (path segments, YAML-parsed value, add-new-key)."""
    add = text.startswith("+")
    body = text[1:] if add else text
    key, sep, raw = body.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected KEY.PATH=VALUE (e.g. Global.epochs=10)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML: {exc}") from None
    return key.strip().split("."), value, add


def apply_override(config: dict[str, Any], text: str) -> None:
    """Set one ``Dotted.path=value`` in place.

    Every segment must already exist (PaddleClas silently creates keys on a
    typo); a leading ``+`` allows creating the missing keys. List items are
    addressed by index.
    """
    segments, value, add = parse_override(text)
    node: Any = config
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        here = ".".join(segments[:depth]) or "<top>"
        if isinstance(node, list):
            index = _list_index(segment, node, here, text)
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise ConfigError(
                f"override {text!r}: {here} is {node!r} ({type(node).__name__}), not a mapping or list; "
                f"cannot set {segment!r} inside it"
            )
        if segment not in node:
            if not add:
                close = difflib.get_close_matches(segment, [str(k) for k in node], n=3, cutoff=0.6)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                keys = ", ".join(str(k) for k in node) or "none"
                raise ConfigError(
                    f"override {text!r}: no key {segment!r} under {here} (keys there: {keys}).{hint} "
                    f"To add a new key, write '+{text}'."
                )
            node[segment] = value if last else {}
        elif last:
            node[segment] = value
        if not last:
            if node[segment] is None and add:
                node[segment] = {}
            node = node[segment]


def _list_index(segment: str, node: list, here: str, text: str) -> int:
    try:
        index = int(segment)
    except ValueError:
        raise ConfigError(f"override {text!r}: {here} is a list; expected an index, found {segment!r}") from None
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override {text!r}: index {index} is out of range for {here} (length {len(node)})")
    return index


def get_path(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """The value at ``A.b.0.c`` or ``default`` when any segment is missing."""
    node: Any = config
    for segment in dotted.split("."):
        if isinstance(node, list) and segment.lstrip("-").isdigit() and -len(node) <= int(segment) < len(node):
            node = node[int(segment)]
        elif isinstance(node, Mapping) and segment in node:
            node = node[segment]
        else:
            return default
    return node


def dump_config(config: Mapping[str, Any]) -> str:
    """The config as YAML, in section order, keys unsorted."""
    return yaml.safe_dump(_plain(config), sort_keys=False, allow_unicode=True, default_flow_style=None)


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return _plain(attrs.asdict(value))
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return copy.copy(value)
