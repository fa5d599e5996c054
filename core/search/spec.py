"""The typed reading of a search file: stages and their parameters, the teacher stage,
the final distillation run. Values are named by their *label*, one line of YAML, which
is what the Optuna study stores, the table shows and a trial folder is named after."""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import attrs
import yaml

#: how a stage chooses its trials: every combination of its values, or Optuna's TPE within a budget
SAMPLERS = ("grid", "tpe")
#: a stage's role: a search stage fixes its best values, the teacher stage picks the
#: teacher of the final run, the final stage is that one distillation run
KINDS = ("search", "teacher", "final")


def label(value: Any) -> str:
    """``value`` as one line of YAML (``0.01``, ``[0.0, 0.5]``, ``ResNet50_vd``): parsing it
    as YAML gives the value back."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000).strip()
    return text.removesuffix("...").strip()  # a plain scalar ends with the document-end marker


def slug(text: str) -> str:
    """A folder-safe form of a label: ``[0.0, 0.5]`` -> ``0.0_0.5``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "value"


@attrs.frozen
class Param:
    """One searched value and the config keys it sets (PaddleClas's ``replace_config``:
    several keys take the same value at once)."""

    name: str
    keys: tuple[str, ...]
    #: the candidates (a grid stage, or a categorical parameter of a TPE stage)
    values: tuple[Any, ...] | None = None
    #: a numeric range of a TPE stage
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def labels(self) -> list[str]:
        return [label(v) for v in self.values or ()]

    def value_of(self, text: str) -> Any:
        """The value a label stands for."""
        for value in self.values or ():
            if label(value) == text:
                return value
        return yaml.safe_load(text)


@attrs.frozen
class Point:
    """One grid trial: a label per parameter of its stage, and the repeat."""

    labels: tuple[str, ...]
    repeat: int

    def folder(self) -> str:
        """``<value>_<repeat>`` (values of a joint stage joined by ``-``); empty for the final run."""
        if not self.labels:
            return ""
        return "-".join(slug(text) for text in self.labels) + f"_{self.repeat}"


@attrs.frozen
class Stage:
    """A stage of the search: its parameters, how it samples them, how often each runs."""

    name: str
    params: tuple[Param, ...]
    sampler: str = "grid"
    #: the trial budget of a TPE stage
    trials: int | None = None
    #: runs per value of a grid stage (PaddleClas's ``search_times``; the mean counts)
    repeats: int = 1
    #: ``{"name": "asha" | "median" | ..., **arguments}`` or None
    pruner: dict | None = None
    kind: str = "search"

    def points(self) -> list[Point]:
        """Every trial of a grid stage, values in file order, repeats innermost."""
        grids = itertools.product(*(param.labels() for param in self.params))
        return [Point(tuple(labels), repeat) for labels in grids for repeat in range(self.repeats)]

    def values_of(self, labels: tuple[str, ...] | list[str]) -> dict[str, Any]:
        """The config key -> value settings of a trial with these labels."""
        settings: dict[str, Any] = {}
        for param, text in zip(self.params, labels):
            value = param.value_of(text)
            settings.update({key: value for key in param.keys})
        return settings


@attrs.frozen
class Teacher:
    """PaddleClas's ``teacher:``: the teacher of the final distillation run."""

    algorithm: str
    rm_keys: tuple[str, ...]
    values: tuple[str, ...]
    repeats: int = 1


@attrs.frozen
class SearchSpec:
    """A whole search, read from its file (:func:`corolla.search.reading.read_search`)."""

    source: Path
    name: str
    base_config: Path
    distill_config: Path | None
    output_dir: Path
    gpus: tuple[int, ...]
    metric: str | None
    stages: tuple[Stage, ...]
    teacher: Teacher | None
    final_replace: dict
    seed: int = 0
    #: a dataset to generate before the search (``root`` and make_list_dataset's arguments), or None
    dataset: dict | None = None

    def all_stages(self) -> list[Stage]:
        """The search stages, then the teacher stage (``skl-ugi``) and the final run."""
        stages = list(self.stages)
        if self.teacher is not None and self.teacher.algorithm == "skl-ugi":
            param = Param("teacher", ("Arch.name",), self.teacher.values)
            stages.append(Stage("teacher", (param,), repeats=self.teacher.repeats, kind="teacher"))
        if self.distill_config is not None:
            stages.append(Stage("final", (), kind="final"))
        return stages
