"""The plan: one typed, checked reading of a config, shared by every verb.

:func:`corolla.config.planner.read_plan` resolves every component a config names (at the places its kind's
registration hook declares, :mod:`corolla.plugin.hookspecs`), checks each one's
arguments against its factory's signature and annotations, structures the sections
the core reads (``Global``, ``AMP``, ``EMA``, loaders, ``Infer``), works out the
run's ``class_num``, and checks every key an override added. ``corolla config``,
each verb and the run manifest use the same plan, so a config that ``corolla
config`` accepts is one that ``train`` will not reject. Nothing downstream reads
the raw config dict.
"""
from __future__ import annotations

from typing import Any, Iterator

import attrs

from corolla.config.sections import AmpSection, EmaSection, GlobalSection, InferSection, LoaderSettings
from corolla.plugin.errors import ConfigError
from corolla.plugin.registry import Component, Registry

#: what each verb needs from a config
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "train": ("Arch", "Loss.Train", "Optimizer", "DataLoader.Train"),
    "eval": ("Arch", "DataLoader.Eval"),
    "infer": ("Arch", "Infer.transforms", "Infer.infer_imgs"),
    "export": ("Arch", "Infer.transforms"),
    "predict": ("Infer.infer_imgs",),
}
MODES = ("Train", "Eval")


@attrs.frozen
class Part:
    """One planned component: where it sits, what it resolved to, its checked arguments."""

    kind: str
    name: str
    key_path: str
    component: Component
    #: the arguments from the config, checked (without the ``consumed`` keys)
    params: dict
    #: config keys the engine takes itself (a loss's ``weight``)
    consumed: dict = attrs.field(factory=dict)
    #: components this one builds itself (a DistillationModel's models)
    children: tuple[Part, ...] = ()

    def build(self, registry: Registry, **injected: Any) -> Any:
        """Call the factory with the checked arguments and the engine's ``injected`` ones."""
        return registry.create(self.component, {**self.params, **injected}, key_path=self.key_path)

    def walk(self) -> Iterator[Part]:
        yield self
        for child in self.children:
            yield from child.walk()


@attrs.frozen
class ModelPlan:
    """``Arch``: the backbone and the keys the engine reads beside it."""

    part: Part
    #: the run's class count: what the model predicts, Mixup mixes and labels must stay below
    class_num: int | None
    use_sync_bn: bool
    infer_add_softmax: bool


@attrs.frozen
class LoaderPlan:
    """``DataLoader.<mode>``."""

    mode: str
    dataset: Part
    transforms: tuple[Part, ...]
    batch_transforms: tuple[Part, ...]
    sampler: Part
    loader: LoaderSettings

    @property
    def key_path(self) -> str:
        return f"DataLoader.{self.mode}"


@attrs.frozen
class Plan:
    """A checked config; see the module docstring. ``config`` is the merged mapping
    (for printing and the manifest), ``registry`` the registry it was checked against."""

    config: dict
    registry: Registry
    settings: GlobalSection
    amp: AmpSection | None
    ema: EmaSection | None
    model: ModelPlan | None
    losses: dict[str, tuple[Part, ...]]
    metrics: dict[str, tuple[Part, ...]]
    optimizer: Part | None
    lr_schedule: Part | None
    loaders: dict[str, LoaderPlan]
    infer: InferSection
    infer_transforms: tuple[Part, ...]
    postprocess: Part
    callbacks: tuple[Part, ...]

    def parts(self) -> Iterator[Part]:
        """Every planned component, sub-components included, in config order."""
        groups: list[Any] = [[self.model.part] if self.model else []]
        groups += [self.losses[mode] for mode in MODES]
        for mode in MODES:
            if mode in self.loaders:
                loader = self.loaders[mode]
                groups += [[loader.dataset], loader.transforms, loader.batch_transforms, [loader.sampler]]
        groups += [self.metrics[mode] for mode in MODES]
        groups += [[p for p in (self.optimizer, self.lr_schedule) if p is not None]]
        groups += [self.infer_transforms, [self.postprocess], self.callbacks]
        for group in groups:
            for part in group:
                yield from part.walk()

    def ready_for(self) -> list[str]:
        """The verbs this config has everything for."""
        return [verb for verb in REQUIREMENTS if not self._missing(verb)]

    def require(self, verb: str) -> Plan:
        """This plan, or a :class:`ConfigError` naming the sections ``verb`` needs and lacks."""
        missing = self._missing(verb)
        if missing:
            raise ConfigError(f"{self.config_source}: corolla {verb} needs {', '.join(missing)}, which the config lacks")
        return self

    @property
    def config_source(self) -> str:
        return getattr(self.config, "source", "config")

    def _missing(self, verb: str) -> list[str]:
        present = {
            "Arch": self.model is not None,
            "Loss.Train": bool(self.losses["Train"]),
            "Optimizer": self.optimizer is not None,
            "DataLoader.Train": "Train" in self.loaders,
            "DataLoader.Eval": "Eval" in self.loaders,
            "Infer.transforms": bool(self.infer_transforms),
            "Infer.infer_imgs": bool(self.infer.infer_imgs),
        }
        return [need for need in REQUIREMENTS[verb] if not present[need]]
