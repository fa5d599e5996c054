"""The training config of each trial: the base config (the distillation config for the
final run) with the ``-o`` overrides, the best values of the earlier stages and the
trial's own values, set the way ``-o KEY=VALUE`` sets them."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import attrs
import yaml

from corolla.config.load import Config, apply_override, dump_config, get_path, load_config
from corolla.config.planner import read_plan
from corolla.config.sections import GlobalSection, plugin_registry
from corolla.plugin.errors import ConfigError, CorollaError
from corolla.plugin.registry import Registry
from corolla.search.reading import Overrides
from corolla.search.spec import Param, SearchSpec, Stage, label

_MISSING = object()


def map_key(key: str, final_replace: Mapping[str, str]) -> str:
    """A base-config key as the distillation config names it (PaddleClas's ``final_replace``:
    ``Arch.lr_mult_list`` -> ``Arch.models.1.Student.lr_mult_list``)."""
    for before, after in final_replace.items():
        if key == before or key.startswith(before + "."):
            return after + key[len(before):]
    return key


def _map_override(text: str, final_replace: Mapping[str, str]) -> str:
    add = "+" if text.startswith("+") else ""
    key, sep, value = text.removeprefix("+").partition("=")
    return f"{add}{map_key(key.strip(), final_replace)}{sep}{value}"


def apply_settings(config: dict, settings: Mapping[str, Any]) -> dict:
    """A copy of ``config`` with each ``key path -> value`` set as ``-o`` would set it."""
    merged = copy.deepcopy(config)
    for key, value in settings.items():
        apply_override(merged, f"{key}={label(value)}")
    return merged


def with_output_dir(config: dict, folder: Path) -> dict:
    """``config`` with ``Global.output_dir`` set to ``folder``."""
    config["Global"] = {**(config.get("Global") or {}), "output_dir": str(folder)}
    return config


def with_repeat_seed(config: dict, repeat: int) -> dict:
    """``config`` for repeat ``repeat`` of its values: ``Global.seed`` + ``repeat``, so that the
    repeats differ (repeat 0 keeps the seed). Without a seed (GlobalSection's default, None)
    each run draws its own, so the repeats differ already."""
    seed = (config.get("Global") or {}).get("seed", GlobalSection().seed)
    if repeat and seed is not None:
        config["Global"] = {**(config.get("Global") or {}), "seed": seed + repeat}
    return config


class TrialConfigs:
    """The configs a search trains: base and distillation config, loaded once with the
    overrides of ``corolla search -o``; ``registry_of`` gives the plugins a trial of a
    config loads (``corolla search`` adds its plugin flags to ``Global.plugins``)."""

    def __init__(self, spec: SearchSpec, overrides: Overrides,
                 registry_of: Callable[[Config], Registry] = plugin_registry) -> None:
        self.spec, self.registry_of = spec, registry_of
        self.base = load_config(spec.base_config, [*overrides.common, *overrides.base])
        self.distill: Config | None = None
        if spec.distill_config is not None:
            mapped = [_map_override(text, spec.final_replace) for text in overrides.common]
            self.distill = load_config(spec.distill_config, [*mapped, *overrides.distill])

    def build(self, stage: Stage, settings: Mapping[str, Any], found: Mapping[str, Any], folder: Path,
              repeat: int = 0) -> dict:
        """The config of a trial of ``stage`` writing to ``folder``: ``found`` holds the
        best values of the earlier stages, ``settings`` the trial's own (for the final run,
        the teacher's), ``repeat`` the run of these values (:func:`with_repeat_seed`)."""
        if stage.kind == "final":
            assert self.distill is not None
            fixed = {map_key(key, self.spec.final_replace): value for key, value in found.items()}
            config = apply_settings(self.distill, {**fixed, **settings})
        else:
            if stage.kind == "teacher":
                found = {key: value for key, value in found.items() if not _removed(key, self.spec.teacher.rm_keys)}
            config = apply_settings(self.base, {**found, **settings})
        return with_output_dir(with_repeat_seed(config, repeat), folder)

    def check_keys(self, stages: Iterable[Stage], teacher_keys: Iterable[str]) -> None:
        """Check the configs before the first trial as ``corolla train`` checks them, with the
        keys of ``-o`` and every key a stage sets. Such a key must sit in a mapping or list
        item that its config has (``transform_ops.1.RandCropImage.size`` needs item 1 to be
        ``RandCropImage``); a key the config lacks (``Arch.lr_mult_list``) must be known to
        the schema or to its component, as with ``-o``. Then each value a stage may set (each
        of ``search_values``, or ``low`` and ``high``) is planned alone, so a value the config
        cannot take (a negative learning rate, an unknown model) stops the search here."""
        base, distill = _Checks(), _Checks()
        for stage in stages:
            for param in stage.params:
                setter = self._setter(stage, param)
                mapped = tuple(map_key(key, self.spec.final_replace) for key in param.keys)
                if stage.kind != "final":
                    base.add(param.keys, setter, _candidates(param))
                if self.distill is not None and stage.kind == "search":
                    distill.add(mapped, f"{setter}, through final_replace,", _candidates(param))
        distill.add(tuple(teacher_keys), f"teacher of {self.spec.source}", ())
        self._check(self.base, self.spec.base_config, base)
        if self.distill is not None:
            self._check(self.distill, self.spec.distill_config, distill)

    def _setter(self, stage: Stage, param: Param) -> str:
        """The search file key that sets the config keys of ``param``, for messages."""
        if stage.kind == "teacher":
            return f"teacher of {self.spec.source}"
        joint = "" if stage.params == (param,) and param.name == stage.name else f".params.{param.name}"
        index = self.spec.stages.index(stage)
        return f"search_dict.{index}{joint}.replace_config (stage {stage.name!r}) of {self.spec.source}"

    def _check(self, config: Config, path: Path | None, checks: _Checks) -> None:
        """Plan ``config`` with the keys of ``checks``, then with each of their values."""
        for key, setter in checks.setters.items():
            parent = key.rpartition(".")[0]
            if parent and get_path(config, parent, _MISSING) is _MISSING:
                raise ConfigError(f"{path}: {setter} sets {key}, but the config has no {parent} "
                                  f"(PaddleClas would add it silently; fix the key path or the config)")
        new_keys = {key: setter for key, setter in checks.setters.items() if get_path(config, key, _MISSING) is _MISSING}
        registry = self.registry_of(config)
        try:
            plan = read_plan(config, registry, new_keys=new_keys)
        except CorollaError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        deciding = plan.metrics["Eval"][:1]
        if self.spec.metric is None and deciding and getattr(deciding[0].build(registry), "lower_is_better", False):
            raise ConfigError(f"{path}: the trials would be scored by {deciding[0].name}, which is better lower, and the "
                              "search keeps the highest score: set the search file's metric: to a value that is better "
                              "higher, or put such a metric first in Metric.Eval")
        for keys, setter, value in checks.values:
            try:
                read_plan(apply_settings(config, dict.fromkeys(keys, value)), registry, new_keys=new_keys)
            except CorollaError as exc:
                raise ConfigError(f"{path}: {setter}: the value {label(value)}: {exc}") from None


@attrs.define
class _Checks:
    """What to check in one config: each key a search sets (-> the search file key that sets
    it) and each value it may set (keys, setter, value)."""

    setters: dict[str, str] = attrs.Factory(dict)
    values: list[tuple[tuple[str, ...], str, Any]] = attrs.Factory(list)

    def add(self, keys: tuple[str, ...], setter: str, values: Iterable[Any]) -> None:
        self.setters.update(dict.fromkeys(keys, setter))
        self.values += [(keys, setter, value) for value in values]


def _candidates(param: Param) -> tuple[Any, ...]:
    """The values of ``param`` worth planning: each of a list, the ends of a range."""
    if param.values is not None:
        return param.values
    if param.integer:
        return int(param.low), int(param.high)
    return param.low, param.high


def _removed(key: str, rm_keys: Iterable[str]) -> bool:
    return any(key == rm or key.startswith(rm + ".") for rm in rm_keys)


def callbacks_override(config: Mapping[str, Any], callback: Mapping[str, Any]) -> tuple[str, str]:
    """``Global.callbacks=[...]`` with ``callback`` added to the config's callbacks, and the
    name of the file MetricsLog writes (the trial's score is read from it)."""
    listed = (config.get("Global") or {}).get("callbacks")
    items = list(GlobalSection().callbacks if listed is None else listed)
    metrics_log = [item for item in items if isinstance(item, Mapping) and "MetricsLog" in item]
    if not metrics_log:
        raise ConfigError(f"Global.callbacks of {getattr(config, 'source', 'the config')} has no MetricsLog: a search "
                          "reads each trial's score from its metrics.jsonl")
    filename = (metrics_log[0]["MetricsLog"] or {}).get("filename", "metrics.jsonl")
    text = yaml.safe_dump(items + [dict(callback)], default_flow_style=True, width=1_000_000).strip()
    return f"Global.callbacks={text}", filename


def write_config(config: Mapping[str, Any], path: Path) -> Path:
    """Write a trial's config as YAML that ``corolla train -c`` runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_config(config), encoding="utf-8")
    return path
