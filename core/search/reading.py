"""Reading a search file into a :class:`~corolla.search.spec.SearchSpec`.

One format: PaddleClas's ``search.yaml`` keys mean what they mean in its
``tools/search_strategy.py``, and corolla adds keys a PaddleClas file simply lacks
(``metric``, ``pruner``, ``study_name``, ``seed``, ``generate_dataset``; per stage ``params``, ``sampler``,
``trials``, ``pruner``, ``search_times``). See docs/search.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs

from corolla.config.load import SECTIONS, apply_override, parse_yaml
from corolla.plugin.errors import ConfigError
from corolla.search.spec import SAMPLERS, Param, SearchSpec, Stage, Teacher, label, slug

#: the top-level keys of a search file
SEARCH_KEYS = ("base_config_file", "distill_config_file", "gpus", "output_dir", "search_times", "search_dict",
               "teacher", "final_replace", "metric", "pruner", "study_name", "seed", "generate_dataset")
#: Optuna's pruners by the name a search file gives them (``none``: no pruning)
PRUNERS = {"asha": "SuccessiveHalvingPruner", "hyperband": "HyperbandPruner", "median": "MedianPruner",
           "percentile": "PercentilePruner", "none": "NopPruner"}
_STAGE_KEYS = ("search_key", "replace_config", "search_values", "params", "sampler", "trials", "pruner", "search_times")
_PARAM_KEYS = ("replace_config", "search_values", "low", "high", "log", "step", "type")


@attrs.frozen
class Overrides:
    """The ``-o`` of ``corolla search``, sorted by what they change."""

    #: the search file itself (``search_dict.0.search_values=[...]``)
    search: tuple[str, ...] = ()
    #: both training configs (keys mapped through ``final_replace`` for the distillation config)
    common: tuple[str, ...] = ()
    #: the base config of every search and teacher trial only (``base:KEY=VALUE``)
    base: tuple[str, ...] = ()
    #: the distillation config of the final run only (``distill:KEY=VALUE``)
    distill: tuple[str, ...] = ()


def split_overrides(overrides: Iterable[str]) -> Overrides:
    """``KEY=VALUE`` sets the search file when KEY starts with one of its keys, and both
    training configs when it starts with a config section (mapped through ``final_replace``
    for the distillation config); ``base:KEY=VALUE`` / ``distill:KEY=VALUE`` set one only."""
    search: list[str] = []
    common: list[str] = []
    base: list[str] = []
    distill: list[str] = []
    for text in overrides:
        target, sep, rest = text.partition(":")
        if sep and target in ("base", "distill") and "=" in rest:
            (base if target == "base" else distill).append(rest)
            continue
        first = text.lstrip("+").split("=", 1)[0].split(".", 1)[0]
        if first in SEARCH_KEYS:
            search.append(text)
        elif first in SECTIONS:
            common.append(text)
        else:
            raise ConfigError(
                f"-o {text!r}: {first!r} is neither a key of the search file ({', '.join(SEARCH_KEYS)}) nor a "
                f"config section ({', '.join(SECTIONS)}); base:KEY=VALUE or distill:KEY=VALUE sets one config only")
    return Overrides(tuple(search), tuple(common), tuple(base), tuple(distill))


def read_search(path: str | Path, overrides: Overrides = Overrides()) -> SearchSpec:
    """Read and check a search file; the config paths it names are resolved
    (:func:`find_config`)."""
    path = Path(path)
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"), source=str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read the search file {path}: {exc.strerror or exc}") from None
    for text in overrides.search:
        apply_override(raw, text)
    where = str(path)
    unknown = [key for key in raw if key not in SEARCH_KEYS]
    if unknown:
        hint = " (training config sections belong in base_config_file, or in -o)" if set(unknown) & set(SECTIONS) else ""
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a search file has "
                          f"{', '.join(SEARCH_KEYS)}{hint}")
    for key in ("base_config_file", "output_dir", "search_dict"):
        if raw.get(key) in (None, ""):
            raise ConfigError(f"{where}: {key} is missing")
    repeats = _integer(raw.get("search_times", 1), f"{where}: search_times", minimum=1)
    pruner = _pruner(raw.get("pruner"), f"{where}: pruner")
    stages = tuple(_stage(item, f"{where}: search_dict.{i}", repeats, pruner)
                   for i, item in enumerate(_list(raw["search_dict"], f"{where}: search_dict")))
    teacher = _teacher(raw.get("teacher"), f"{where}: teacher")
    distill = raw.get("distill_config_file")
    if teacher is not None and distill is None:
        raise ConfigError(f"{where}: teacher needs distill_config_file, the config of the final distillation run")
    names = [stage.name for stage in stages]
    reserved = {"teacher", "final"} & set(names)
    if len(set(names)) != len(names) or reserved:
        raise ConfigError(f"{where}: search_dict: each search_key names a stage (its folder and study) and must be "
                          f"unique and not 'teacher' or 'final'; found {names}")
    output_dir = Path(_text(raw["output_dir"], f"{where}: output_dir"))
    final_replace = raw.get("final_replace") or {}
    if not isinstance(final_replace, Mapping) or not all(isinstance(v, str) for v in final_replace.values()):
        raise ConfigError(f"{where}: final_replace: expected a mapping of key path -> key path, found {final_replace!r}")
    metric = raw.get("metric")
    return SearchSpec(
        source=path,
        name=_text(raw.get("study_name") or slug(output_dir.resolve().name), f"{where}: study_name"),
        base_config=find_config(raw["base_config_file"], path, "base_config_file"),
        distill_config=find_config(distill, path, "distill_config_file") if distill is not None else None,
        output_dir=output_dir,
        gpus=_gpus(raw.get("gpus"), f"{where}: gpus"),
        metric=_text(metric, f"{where}: metric") if metric is not None else None,
        stages=stages,
        teacher=teacher,
        final_replace=dict(final_replace),
        seed=_integer(raw.get("seed", 0), f"{where}: seed", minimum=0),
        dataset=_dataset(raw.get("generate_dataset"), f"{where}: generate_dataset"),
    )


def find_config(text: Any, search_file: Path, key: str) -> Path:
    """A config path of a search file. PaddleClas's are relative to its repository root
    (``ppcls/configs/PULC/...``); this tries the path as given from the current folder,
    then from the search file's folder and each folder above it, each also without a
    leading ``ppcls/`` (where PaddleClas's configs are copied without their package folder)."""
    path = Path(_text(text, f"{search_file}: {key}"))
    if path.is_absolute():
        tried = [path]
    else:
        relative = [path] + ([Path(*path.parts[1:])] if len(path.parts) > 1 and path.parts[0] == "ppcls" else [])
        folders = [Path.cwd(), search_file.resolve().parent, *search_file.resolve().parent.parents]
        tried = list(dict.fromkeys(folder / part for folder in folders for part in relative))
    for candidate in tried:
        if candidate.is_file():
            return candidate
    listing = "\n  ".join(str(p) for p in tried)
    raise ConfigError(f"{search_file}: {key}: {text} not found; tried:\n  {listing}\n"
                      f"give the path from the current folder or from the search file, or set it with -o {key}=PATH")


def _stage(item: Any, where: str, repeats: int, pruner: dict | None) -> Stage:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: expected a mapping with search_key, replace_config and search_values, found {item!r}")
    known = list(dict.fromkeys(_STAGE_KEYS + _PARAM_KEYS))  # a one-parameter stage holds its parameter's keys
    unknown = [key for key in item if key not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a stage has {', '.join(known)}")
    name = _text(item.get("search_key"), f"{where}.search_key")
    sampler = item.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise ConfigError(f"{where}.sampler: expected one of {', '.join(SAMPLERS)}, found {sampler!r}")
    if "params" in item:
        if "replace_config" in item or "search_values" in item:
            raise ConfigError(f"{where}: give either params (several values searched jointly) or "
                              "replace_config with search_values (one), not both")
        params_node = item["params"]
        if not isinstance(params_node, Mapping) or not params_node:
            raise ConfigError(f"{where}.params: expected a mapping of name -> {{replace_config, search_values | low, high}}")
        params = tuple(_param(str(key), node, f"{where}.params.{key}", sampler) for key, node in params_node.items())
    else:
        params = (_param(name, item, where, sampler, stage_keys=_STAGE_KEYS),)
    trials = item.get("trials")
    if sampler == "tpe":
        trials = _integer(trials, f"{where}.trials (the trial budget of a tpe stage)", minimum=1)
    elif trials is not None:
        raise ConfigError(f"{where}.trials: only a tpe stage has a trial budget; a grid stage runs every value")
    return Stage(
        name=name, params=params, sampler=sampler, trials=trials,
        repeats=_integer(item.get("search_times", repeats), f"{where}.search_times", minimum=1),
        pruner=_pruner(item["pruner"], f"{where}.pruner") if "pruner" in item else pruner,
    )


def _param(name: str, node: Any, where: str, sampler: str, *, stage_keys: tuple[str, ...] = ()) -> Param:
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where}: expected a mapping with replace_config and search_values, found {node!r}")
    unknown = [key for key in node if key not in _PARAM_KEYS + stage_keys]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a parameter has {', '.join(_PARAM_KEYS)}")
    keys = node.get("replace_config")
    keys = [keys] if isinstance(keys, str) else keys
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"{where}.replace_config: expected a list of config key paths, found {keys!r}")
    if "search_values" in node:
        values = _list(node["search_values"], f"{where}.search_values")
        folders = [slug(label(v)) for v in values]
        if len(set(folders)) != len(folders):
            raise ConfigError(f"{where}.search_values: {values} contains values that are equal or differ only in "
                              f"characters a folder name drops ({folders})")
        return Param(name, tuple(keys), values=tuple(values))
    if sampler == "grid":
        raise ConfigError(f"{where}: a grid stage needs search_values (a low/high range needs sampler: tpe)")
    low, high = (_number(node.get(k), f"{where}.{k}") for k in ("low", "high"))
    if not low < high:
        raise ConfigError(f"{where}: expected low < high, found low {low}, high {high}")
    kind = node.get("type", "int" if all(isinstance(node.get(k), int) for k in ("low", "high")) else "float")
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}.type: expected int or float, found {kind!r}")
    step = node.get("step")
    return Param(name, tuple(keys), low=low, high=high, log=bool(node.get("log", False)),
                 step=None if step is None else _number(step, f"{where}.step"), integer=kind == "int")


def _teacher(node: Any, where: str) -> Teacher | None:
    if node is None:
        return None
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where}: expected a mapping with rm_keys and search_values, found {node!r}")
    algorithm = node.get("algorithm", "skl-ugi")
    if algorithm not in ("skl-ugi", "udml"):
        raise ConfigError(f"{where}.algorithm: expected skl-ugi or udml, found {algorithm!r}")
    values = _list(node.get("search_values"), f"{where}.search_values") if algorithm == "skl-ugi" else node.get("search_values") or []
    if not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{where}.search_values: expected backbone names, found {values!r}")
    rm_keys = node.get("rm_keys") or []
    if not isinstance(rm_keys, list) or not all(isinstance(k, str) for k in rm_keys):
        raise ConfigError(f"{where}.rm_keys: expected a list of config key paths, found {rm_keys!r}")
    repeats = _integer(node.get("search_times", 1), f"{where}.search_times", minimum=1)
    return Teacher(algorithm, tuple(rm_keys), tuple(values), repeats)


def _dataset(node: Any, where: str) -> dict | None:
    if node is None:
        return None
    if not isinstance(node, Mapping) or not isinstance(node.get("root"), str):
        raise ConfigError(f"{where}: expected a mapping with root: (a folder) and the arguments of "
                          f"corolla.testing.datasets.make_list_dataset, found {node!r}")
    return dict(node)


def _pruner(node: Any, where: str) -> dict | None:
    if node is None:
        return None
    spec = {"name": node} if isinstance(node, str) else dict(node) if isinstance(node, Mapping) else None
    if spec is None or spec.get("name") not in PRUNERS:
        raise ConfigError(f"{where}: expected one of {', '.join(PRUNERS)} or a mapping with name: and the pruner's "
                          f"arguments, found {node!r}")
    return None if spec["name"] == "none" else spec


def _gpus(node: Any, where: str) -> tuple[int, ...]:
    if node is None or node == "":
        return ()
    items = node.split(",") if isinstance(node, str) else node if isinstance(node, list) else [node]
    try:
        gpus = tuple(int(str(item).strip()) for item in items)
    except ValueError:
        raise ConfigError(f"{where}: expected GPU ids such as 0,1,2,3, found {node!r}") from None
    return gpus


def _list(node: Any, where: str) -> list:
    if not isinstance(node, list) or not node:
        raise ConfigError(f"{where}: expected a non-empty list, found {node!r}")
    return node


def _text(node: Any, where: str) -> str:
    if not isinstance(node, str) or not node:
        raise ConfigError(f"{where}: expected a non-empty string, found {node!r}")
    return node


def _integer(node: Any, where: str, *, minimum: int) -> int:
    if isinstance(node, bool) or not isinstance(node, int) or node < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, found {node!r}")
    return node


def _number(node: Any, where: str) -> float:
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise ConfigError(f"{where}: expected a number, found {node!r}")
    return node
