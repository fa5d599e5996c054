"""Load PaddleClas-style YAML configs and apply ``-o Dotted.path=value`` overrides.

Numbers written ``1e-5`` are numbers (YAML 1.1 reads them as strings; PaddleClas turns
them into numbers). An override may set a key the file lacks: the config plan then
checks that the schema or the component's signature knows it (``Config.added``).
"""
from __future__ import annotations

import copy
import difflib
import importlib.util
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs
import yaml

from corolla.plugin.errors import ConfigError

#: The sections of a PaddleClas 2.x config, plus the ones corolla adds.
SECTIONS = ("Global", "Arch", "Loss", "Optimizer", "DataLoader", "Metric", "Infer", "AMP", "EMA")


class Config(dict):
    """A merged config: the mapping itself, the file it came from, and the dotted key
    paths that overrides added without a leading ``+`` (for the plan to check)."""

    def __init__(self, data: Mapping[str, Any] = (), *, source: str = "<config>", added: Iterable[str] = ()) -> None:
        super().__init__(data)
        self.source = source
        self.added = list(added)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser: 2x faster, same result
    """``yaml.safe_load``'s loader, reading ``1e-5`` (no dot) as a number, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

#: values a config may expand to, aliases counted each time they are used
MAX_VALUES = 1_000_000


def shipped_configs() -> Path:
    """The folder of the configs corolla ships (``configs/`` in the source tree, the
    ``corolla.configs`` package data once installed)."""
    spec = importlib.util.find_spec("corolla.configs")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the shipped configs are missing: reinstall corolla")
    return Path(list(spec.submodule_search_locations)[0])


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (safe loading only) and apply overrides in order.

    Unknown top-level sections are errors that suggest the closest known one.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    config = Config(parse_yaml(text, source=str(path)), source=str(path))
    for override in overrides:
        added = apply_override(config, override)
        if added:
            config.added.append(added)
    check_sections(config, source=str(path))
    return config


def parse_yaml(text: str, *, source: str) -> dict[str, Any]:
    """Parse config text; errors name ``source:line:column``."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
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
    _check_size(data, source)
    return data


def _check_size(data: Any, source: str) -> None:
    """Refuse a config that expands to more than :data:`MAX_VALUES` values: YAML aliases
    can nest so that a small file stands for billions of values ("billion laughs")."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if isinstance(node, Mapping):
            total = 1 + sum(size(v) for v in node.values())
        elif isinstance(node, list):
            total = 1 + sum(size(v) for v in node)
        else:
            total = 1
        sizes[id(node)] = total
        if total > MAX_VALUES:
            raise ConfigError(f"{source}: the config expands to more than {MAX_VALUES:,} values through "
                              "YAML aliases (&anchor / *alias); refusing to load it")
        return total

    size(data)


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
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML: {exc}") from None
    return key.strip().split("."), value, add


def apply_override(config: dict[str, Any], text: str) -> str | None:
    """Set one ``Dotted.path=value`` in place; return its dotted path if it created a key.

    A key the file lacks is created; the config plan then checks that the schema or the
    component's signature knows it (PaddleClas silently creates keys on a typo). A
    leading ``+`` adds keys on purpose, unchecked. List items are addressed by index.
    """
    segments, value, add = parse_override(text)
    node: Any = config
    created: str | None = None
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        here = ".".join(segments[:depth]) or "<top>"
        if isinstance(node, list):
            index = _list_index(segment, node, here, text)
            if last:
                node[index] = value
                continue
            if not add:
                _check_item_name(node, index, segments[depth + 1], here, text)
            node = node[index]
            continue
        if node is None:
            node = _parent_mapping(config, segments[:depth])
        if not isinstance(node, dict):
            raise ConfigError(
                f"override {text!r}: {here} is {node!r} ({type(node).__name__}), not a mapping or list; "
                f"cannot set {segment!r} inside it"
            )
        if segment not in node:
            if not add:
                created = ".".join(segments)
            node[segment] = value if last else {}
        elif last:
            node[segment] = value
        if not last:
            node = node[segment]
    return created


def _parent_mapping(config: dict[str, Any], segments: list[str]) -> dict[str, Any]:
    """Turn the null at ``segments`` (``EMA:`` with nothing after it) into an empty mapping."""
    node: Any = config
    for segment in segments[:-1]:
        node = node[int(segment)] if isinstance(node, list) else node[segment]
    key = int(segments[-1]) if isinstance(node, list) else segments[-1]
    node[key] = {}
    return node[key]


def _check_item_name(items: list, index: int, name: str, here: str, text: str) -> None:
    """An override reaching into item ``index`` of a component list (``transform_ops.2.RandCropImage.size``)
    must name that item's component: another name would make it an item of two components."""
    found = _component_name(items[index])
    if found in (None, name):
        return
    named = [str(i) for i, item in enumerate(items) if _component_name(item) == name]
    where = f"{name} is item {', '.join(named)}" if named else f"no item of {here} is {name}"
    raise ConfigError(f"override {text!r}: item {index} of {here} is {found}, not {name} ({where})")


def _component_name(item: Any) -> str | None:
    """The component a ``- Name: {params}`` list item names, or None for any other item."""
    if isinstance(item, dict) and len(item) == 1 and "name" not in item:
        return str(next(iter(item)))
    return None


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
