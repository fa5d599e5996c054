"""Reading a config into its :class:`~corolla.config.plan.Plan`: resolve, check, structure."""
from __future__ import annotations

import inspect
import math
import warnings
from types import MappingProxyType
from typing import Any, Mapping

import attrs

from corolla.config.load import SECTIONS, Config
from corolla.config.plan import MODES, LoaderPlan, ModelPlan, Part, Plan
from corolla.config.schema import did_you_mean, structure, warn_unused_key
from corolla.config.sections import (AmpSection, EmaSection, GlobalSection, InferSection, LoaderSettings, PluginSettings,
                                     read_amp, read_ema, read_global)
from corolla.config.specs import ComponentSpec, item_specs, named_spec
from corolla.config.stand_ins import stand_ins
from corolla.plugin.arguments import accepted_arguments, check_arguments
from corolla.plugin.errors import ConfigError
from corolla.plugin.lifecycle import hook_problems
from corolla.plugin.registry import KINDS, Registry

#: any key is known under these paths (free-form mappings)
_ANY = None


def read_plan(config: Mapping[str, Any], registry: Registry, *,
              new_keys: Mapping[str, str] = MappingProxyType({})) -> Plan:
    """Check ``config`` against ``registry`` and return its :class:`Plan`.

    ``new_keys`` maps key paths that ``config`` lacks and something will set (a search
    stage's ``replace_config``) to what sets them; each is checked as a key ``-o`` added.
    Raises :class:`ConfigError` (or :class:`~corolla.plugin.errors.ComponentArgumentError`,
    :class:`~corolla.plugin.errors.UnknownComponentError`) naming the key path of the
    first problem.
    """
    return _Planner(config, registry).plan(new_keys)


def plan_items(registry: Registry, kind: str, node: Any, key_path: str, **defaults: Any) -> tuple[Part, ...]:
    """Plan a list of components outside a config (an exported model's preprocessing);
    ``defaults`` fill arguments the items take and do not set."""
    planner = _Planner({}, registry)
    return tuple(planner._part(kind, spec, defaults=defaults) for spec in item_specs(node, key_path))


def plan_named(registry: Registry, kind: str, node: Any, key_path: str) -> Part:
    """Plan one ``{name: X, ...}`` component outside a config (an exported model's post-process)."""
    return _Planner({}, registry)._named(kind, node, key_path)


class _Planner:
    def __init__(self, config: Mapping[str, Any], registry: Registry) -> None:
        self.config = config
        self.registry = registry
        #: key path -> the keys known there (None: any key), for checking added keys
        self.known: dict[str, set[str] | None] = {}
        self.epochs = 1  # Global.epochs, for a trial schedule

    def plan(self, new_keys: Mapping[str, str]) -> Plan:
        config = self.config
        added = getattr(config, "added", ())
        self.known[""] = set(SECTIONS)
        self._know_section("Global", GlobalSection)
        self._know_section("Global.plugins", PluginSettings)
        self.known["Global.plugins.prefer"] = _ANY
        self._know_section("AMP", AmpSection)
        self._know_section("EMA", EmaSection)
        self._know_section("Infer", InferSection)
        self._know_mode_sections()
        self._check_added(added)  # the sections' keys, before their readers warn about them
        settings = read_global(config)
        self.epochs = settings.epochs
        model = self._model(settings) if config.get("Arch") is not None else None
        class_num = model.class_num if model else settings.class_num
        for section in ("DataLoader", "Loss", "Metric"):
            self._warn_unused(config.get(section), section)
        loaders = {mode: self._loader(mode, class_num) for mode in MODES if _get(config, "DataLoader", mode) is not None}
        if "Eval" in loaders and settings.eval_during_train:
            _warn_if_never_evaluated(settings)
        optimizer, schedule = self._optimizer() if config.get("Optimizer") is not None else (None, None)
        infer = structure(InferSection, config.get("Infer"), "Infer")
        postprocess = self._named("postprocess", infer.PostProcess or {"name": "Topk", "topk": 5}, "Infer.PostProcess")
        callbacks = self._items("callback", settings.callbacks, "Global.callbacks")
        if settings.use_visualdl and not any(p.name == "VisualDL" for p in callbacks):
            callbacks += self._items("callback", [{"VisualDL": None}], "Global.use_visualdl")
        plan = Plan(
            config=dict(config) if not isinstance(config, Config) else config,
            registry=self.registry,
            settings=settings,
            amp=read_amp(config, settings),
            ema=read_ema(config),
            model=model,
            losses={mode: self._losses(mode) for mode in MODES},
            metrics={mode: self._items("metric", _get(config, "Metric", mode), f"Metric.{mode}") for mode in MODES},
            optimizer=optimizer,
            lr_schedule=schedule,
            loaders=loaders,
            infer=infer,
            infer_transforms=self._items("transform", infer.transforms, "Infer.transforms"),
            postprocess=postprocess,
            callbacks=callbacks,
        )
        self._check_added(added)
        for path, setter in new_keys.items():
            if problem := self._unknown_key(path):
                raise ConfigError(f"{setter} sets {path}, but {problem}")
        return plan

    # --- components -------------------------------------------------------------------

    def _part(self, kind: str, spec: ComponentSpec, *, defaults: Mapping[str, Any] = ()) -> Part:
        component = self.registry.resolve(kind, spec.name, key_path=spec.key_path)
        factory = component.load()
        declared = KINDS[kind]
        params = dict(spec.params)
        consumed = {key: params.pop(key) for key in declared.consumed if key in params}
        accepted, any_key = accepted_arguments(factory)
        for key, value in dict(defaults).items():
            if key not in params and (key in accepted or any_key):
                params[key] = value
        params = check_arguments(factory, params, component=component.describe(), key_path=spec.key_path, injected=declared.injected)
        if kind == "backbone" and type(params.get("class_num")) is int and params["class_num"] < 1:
            raise ConfigError(f"{spec.key_path}.class_num: expected a class count of at least 1, found {params['class_num']}")
        if kind == "callback" and inspect.isclass(factory) and (problems := hook_problems(factory)):
            raise ConfigError(f"{spec.key_path}: {component.describe()}: {problems[0]}")
        if declared.trial:  # cheap to make: make one, so that the values its factory checks are checked now
            self.registry.create(component, {**params, **stand_ins(kind, self.epochs)}, key_path=spec.key_path)
        self.known[spec.key_path] = _ANY if any_key else {*accepted, *declared.consumed, "name"}
        children = getattr(factory, "corolla_children", None)
        planned = tuple(
            self._part(child_kind, child_spec) for child_kind, child_spec in (children(params, spec.key_path) if callable(children) else ())
        )
        return Part(kind, spec.name, spec.key_path, component, params, consumed, planned)

    def _named(self, kind: str, node: Any, key_path: str, **defaults: Any) -> Part:
        return self._part(kind, named_spec(node, key_path), defaults=defaults)

    def _items(self, kind: str, node: Any, key_path: str) -> tuple[Part, ...]:
        return tuple(self._part(kind, spec) for spec in item_specs(node, key_path))

    def _losses(self, mode: str) -> tuple[Part, ...]:
        parts = self._items("loss", _get(self.config, "Loss", mode), f"Loss.{mode}")
        for part in parts:
            weight = part.consumed.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"{part.key_path}.weight: expected a finite number >= 0, found {weight!r} ({type(weight).__name__})")
        return parts

    def _model(self, settings: GlobalSection) -> ModelPlan:
        arch = self.config["Arch"]
        own = arch.get("class_num") if isinstance(arch, Mapping) else None
        if settings.class_num and own is not None and own != settings.class_num:
            warnings.warn(f"Global.class_num={settings.class_num} is ignored: Arch.class_num={own} is set, and wins as in "
                          "PaddleClas (set Arch.class_num instead)", UserWarning, stacklevel=3)
        part = self._named("backbone", arch, "Arch", **({"class_num": settings.class_num} if settings.class_num else {}))
        for key in ("use_sync_bn", "infer_add_softmax"):
            value = part.consumed.get(key, key == "infer_add_softmax")
            if not isinstance(value, bool):
                raise ConfigError(f"Arch.{key}: expected true or false, found {value!r}")
        return ModelPlan(
            part=part,
            class_num=_class_num(part),
            use_sync_bn=part.consumed.get("use_sync_bn", False),
            infer_add_softmax=part.consumed.get("infer_add_softmax", True),
        )

    def _loader(self, mode: str, class_num: int | None) -> LoaderPlan:
        key_path = f"DataLoader.{mode}"
        section = _get(self.config, "DataLoader", mode)
        if not isinstance(section, Mapping):
            raise ConfigError(f"{key_path}: expected a mapping with dataset, sampler and loader, found {section!r}")
        self._warn_unused(section, key_path)
        if "dataset" not in section:
            raise ConfigError(f"{key_path}.dataset: missing; found keys: {', '.join(map(str, section)) or 'none'}")
        dataset = self._named("dataset", section["dataset"], f"{key_path}.dataset")
        transforms = self._items("transform", dataset.params.pop("transform_ops", None), f"{key_path}.dataset.transform_ops")
        if not transforms:
            raise ConfigError(f"{key_path}.dataset.transform_ops: missing; the loader needs at least '- DecodeImage:'")
        batch_transforms = tuple(
            self._part("batch_transform", spec, defaults={"class_num": class_num} if class_num else {})
            for spec in item_specs(dataset.consumed.get("batch_transform_ops"), f"{key_path}.dataset.batch_transform_ops")
        )
        sampler = self._sampler(section.get("sampler"), f"{key_path}.sampler", transforms)
        return LoaderPlan(mode, dataset, transforms, batch_transforms, sampler,
                          structure(LoaderSettings, section.get("loader"), f"{key_path}.loader"))

    def _sampler(self, node: Any, key_path: str, transforms: tuple[Part, ...]) -> Part:
        """``DataLoader.<mode>.sampler`` (``DistributedBatchSampler`` when it names none); a
        sampler that varies the image size needs a transform that sets it."""
        if node is None or (isinstance(node, Mapping) and "name" not in node):
            node = {"name": "DistributedBatchSampler", **(node or {})}
        sampler = self._named("sampler", node, key_path)
        if getattr(sampler.component.load(), "varies_image_size", False) and not any(map(sets_image_size, transforms)):
            raise ConfigError(f"{key_path}: {sampler.name} varies the image size from batch to batch, but no transform "
                              f"of {key_path.rpartition('.')[0]}.dataset.transform_ops sets a size "
                              "(RandCropImage, ResizeImage or CropImage with size)")
        return sampler

    def _optimizer(self) -> tuple[Part, Part]:
        optimizer = self._named("optimizer", self.config["Optimizer"], "Optimizer")
        if "lr" not in optimizer.consumed:
            raise ConfigError("Optimizer: missing key 'lr' (e.g. lr: {name: Cosine, learning_rate: 0.1})")
        lr = optimizer.consumed["lr"]
        if isinstance(lr, Mapping):
            node = lr if "name" in lr else {"name": "Constant", **lr}  # ``lr: {learning_rate: 0.1}``
        elif isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
            node = {"name": "Constant", "learning_rate": float(lr)}  # ``lr: 0.1``
        else:
            raise ConfigError(f"Optimizer.lr: expected a mapping (name: Cosine, learning_rate: ...) or a number > 0, found {lr!r}")
        rate = node.get("learning_rate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0):
            raise ConfigError(f"Optimizer.lr.learning_rate: expected a number > 0, found {rate!r}")
        return optimizer, self._named("lr_schedule", node, "Optimizer.lr")

    # --- keys ---------------------------------------------------------------------------

    def _know_section(self, key_path: str, section: type) -> None:
        self.known[key_path] = {f.name for f in attrs.fields(section)}

    def _know_mode_sections(self) -> None:
        for section in ("DataLoader", "Loss", "Metric"):
            self.known[section] = set(MODES)
        for mode in MODES:
            self.known[f"DataLoader.{mode}"] = {"dataset", "sampler", "loader"}
            self._know_section(f"DataLoader.{mode}.loader", LoaderSettings)

    def _warn_unused(self, node: Any, key_path: str) -> None:
        """Warn about each key of the mapping at ``key_path`` that corolla does not read: a
        warning, as for ``Global``, because PaddleClas configs carry such keys
        (``DataLoader.UnLabelTrain``, ``DataLoader.Eval.Query``, ``Loss.MetaTrain``)."""
        if isinstance(node, Mapping):
            for key in node:
                if key not in self.known[key_path]:
                    warn_unused_key(f"{key_path}.{key}", self.known[key_path])

    def _check_added(self, added: Any) -> None:
        """Each key that ``-o`` added must be known to the schema or to its component
        (keys inside a component's argument values are that argument's business)."""
        for path in added:
            if problem := self._unknown_key(path):
                raise ConfigError(f"override of {path}: {problem} To add a key nobody checks, write '+{path}=...'.")

    def _unknown_key(self, path: str) -> str | None:
        """Why ``path`` may not be added: its first key that the schema or its component
        does not know; None when every key checked is known."""
        segments = path.split(".")
        for depth, key in enumerate(segments):
            parent = ".".join(segments[:depth])
            if parent not in self.known:
                continue  # a list or an argument's value: a component further down may know its keys
            known = self.known[parent]
            if known is _ANY:
                return None
            if key not in known:
                return f"{parent or 'the config'} has no key {key!r} (known: {', '.join(sorted(known))}).{did_you_mean(key, known)}"
        return None


def _warn_if_never_evaluated(settings: GlobalSection) -> None:
    """No epoch of training is evaluated (so no ``best_model`` is written, which ``export`` reads)."""
    if not any(epoch % settings.eval_interval == 0 for epoch in range(max(settings.start_eval_epoch, 1), settings.epochs + 1)):
        warnings.warn(f"Global.start_eval_epoch={settings.start_eval_epoch} and Global.eval_interval={settings.eval_interval} "
                      f"leave no epoch of Global.epochs={settings.epochs} evaluated: training will write no best_model",
                      UserWarning, stacklevel=2)


def _get(config: Mapping[str, Any], *keys: str) -> Any:
    node: Any = config
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def sets_image_size(part: Part) -> bool:
    """Whether a planned transform fixes the image size (``size`` or ``resize_short``): the
    ops a multi-scale sampler resizes to each batch's size."""
    return part.kind == "transform" and ("size" in part.params or "resize_short" in part.params)


def _class_num(part: Part) -> int | None:
    """The class count a backbone predicts: its ``class_num`` argument or default, or,
    for a composite (a distillation model), the one its sub-models agree on."""
    if "class_num" in part.params:
        return part.params["class_num"]
    found = {_class_num(child) for child in part.children if child.kind == "backbone"}
    if part.children:
        return found.pop() if len(found) == 1 else None
    accepted, _ = accepted_arguments(part.component.load())
    default = accepted["class_num"].default if "class_num" in accepted else None
    return default if isinstance(default, int) and not isinstance(default, bool) else None
