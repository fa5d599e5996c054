"""The hooks a corolla plugin may implement: the whole contract for plugin authors.

A plugin is a module (or any object) registered under the ``corolla.plugins``
entry-point group of its distribution::

    [project.entry-points."corolla.plugins"]
    my_models = "my_models.plugin"

and implements any of the hooks below with ``@corolla.api.hookimpl``. Implement
only what you provide; every hook is optional.

Registration hooks
    Called once per plugin when the registry is built. Each returns a mapping from
    config name (the ``name:`` or list key used in YAML) to a factory: a callable
    whose keyword arguments are the component's config parameters. Each hook gives
    one *kind* of component, and its marker says where that kind sits in a config
    (``places``), which config keys the engine takes out of the component's section
    before calling the factory (``consumed``) and which arguments it passes itself
    (``injected``). The config plan checks every parameter against the factory's
    signature, values against its annotations, before anything is built.

    Instead of the callable, a plugin may give a lazy reference
    ``"package.module:attribute"`` (:func:`corolla.api.lazy`,
    :func:`corolla.api.lazy_variants`), imported only when the component is used,
    which keeps ``corolla plugins`` fast for plugins built on heavy libraries. A
    value of :class:`corolla.api.Alias` makes the name a deprecated alias.

Lifecycle hooks
    Called by the training engine, in every process, for every registered plugin
    and every callback named in ``Global.callbacks``, with the live :class:`Run`.
    Every lifecycle hook returns ``None``; all implementations are called.

What a factory returns for each kind is written below as a ``Protocol``.

This module is over 300 lines on purpose: it is the whole contract, in one file that
a plugin author reads from top to bottom (as pytest's hookspec module).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, Union, runtime_checkable

import attrs

from corolla.plugin.markers import hookspec

#: What a registration hook returns: config name -> factory, lazy reference or Alias.
Components = Mapping[str, Union[Callable[..., Any], str, Any]]


@attrs.frozen
class Kind:
    """A component kind, as its registration hook declares it."""

    name: str
    hook: str
    #: where the kind sits in a config: (key path, shape); shape "named" is a
    #: ``{name: X, **params}`` mapping, "items" a list of ``- X: {params}`` items
    places: tuple[tuple[str, str], ...]
    #: config keys the engine takes out of the section before calling the factory
    consumed: tuple[str, ...] = ()
    #: arguments the engine passes itself
    injected: tuple[str, ...] = ()
    #: whether components of this kind are cheap to make: the config plan then makes
    #: one to check the values its factory validates itself (a loss's temperature > 0)
    trial: bool = False


def registration(
    kind: str, *places: tuple[str, str], consumed: Sequence[str] = (), injected: Sequence[str] = (), trial: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a registration hookspec as the one that gives components of ``kind``."""

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        function.corolla_kind = Kind(kind, function.__name__, tuple(places), tuple(consumed), tuple(injected), trial)
        return hookspec(function)

    return mark


# --- registration hooks ------------------------------------------------------


@registration("backbone", ("Arch", "named"), consumed=("use_sync_bn", "infer_add_softmax"))
def corolla_backbones() -> Components:
    """Give model architectures, named in ``Arch.name`` (or a sub-model of a
    composite such as ``DistillationModel``).

    Each factory is called with the other keys of the ``Arch`` section
    (``class_num``, ``pretrained``, ...; ``Global.class_num`` fills ``class_num``
    when the factory takes it and the section does not set it) and returns a
    ``paddle.nn.Layer`` whose ``forward`` gives the logits ``[N, class_num]``, or a
    dict with ``"logits"`` and named features. See :class:`PredictingModel` and
    :class:`Composite` for what composite models add.
    """


@registration("loss", ("Loss.Train", "items"), ("Loss.Eval", "items"), consumed=("weight",), trial=True)
def corolla_losses() -> Components:
    """Give losses, named as list items of ``Loss.Train`` / ``Loss.Eval``.

    Each factory is called with the item's parameters (its ``weight`` is applied by
    the engine) and returns a :class:`Loss`.
    """


@registration(
    "transform",
    ("DataLoader.Train.dataset.transform_ops", "items"),
    ("DataLoader.Eval.dataset.transform_ops", "items"),
    ("Infer.transforms", "items"),
    trial=True,
)
def corolla_transforms() -> Components:
    """Give per-sample transforms, named as list items of ``transform_ops`` (and
    ``Infer.transforms``). Each factory is called with the item's parameters and
    returns a :class:`Transform`."""


@registration(
    "batch_transform",
    ("DataLoader.Train.dataset.batch_transform_ops", "items"),
    ("DataLoader.Eval.dataset.batch_transform_ops", "items"),
    trial=True,
)
def corolla_batch_transforms() -> Components:
    """Give batch transforms, named as list items of ``batch_transform_ops``
    (Mixup, Cutmix, ...). Each factory is called with the item's parameters (and
    the run's ``class_num`` when it takes one and the item does not set it) and
    returns a :class:`BatchTransform`."""


@registration(
    "dataset",
    ("DataLoader.Train.dataset", "named"),
    ("DataLoader.Eval.dataset", "named"),
    consumed=("batch_transform_ops",),
    injected=("transform_ops",),
)
def corolla_datasets() -> Components:
    """Give datasets, named in ``DataLoader.<Mode>.dataset.name``.

    Each factory is called with the section's other keys (``image_root``,
    ``cls_label_path``, ...) and ``transform_ops``, the built preprocessing
    pipeline; it returns a :class:`Dataset`.
    """


@registration(
    "sampler",
    ("DataLoader.Train.sampler", "named"),
    ("DataLoader.Eval.sampler", "named"),
    injected=("dataset", "seed", "rank", "world_size"),
    trial=True,
)
def corolla_samplers() -> Components:
    """Give batch samplers, named in ``DataLoader.<Mode>.sampler.name``
    (``DistributedBatchSampler``, the default; ``BatchSampler``, ``MultiScaleSampler``, ...).

    Each factory is called with the section's other keys (``batch_size``,
    ``shuffle``, ...) and ``dataset`` (the built dataset), ``seed`` (the run's, the
    same in every process), ``rank`` and ``world_size`` (the process's place in a
    multi-process run), and returns a :class:`Sampler`. The config check makes one
    first, on a stand-in dataset of 1024 samples, so that the values it checks
    (``batch_size >= 1``, ...) are checked before anything is built.
    """


@registration("metric", ("Metric.Train", "items"), ("Metric.Eval", "items"), trial=True)
def corolla_metrics() -> Components:
    """Give metrics, named as list items of ``Metric.Train`` / ``Metric.Eval``
    (``TopkAcc``, ...). Each factory returns a :class:`Metric`."""


@registration("optimizer", ("Optimizer", "named"), consumed=("lr",), injected=("model", "learning_rate"), trial=True)
def corolla_optimizers() -> Components:
    """Give optimizers, named in ``Optimizer.name`` (``Momentum``, ``AdamW``, ...).

    Each factory is called with the section's parameters, ``model`` (the layer to
    train; its ``parameters()``) and ``learning_rate`` (the built schedule), and
    returns a Paddle optimizer. The config check makes one first, for a stand-in
    model (one ``paddle.nn.Linear``) and a rate of 0.1, so that the values it checks
    (``momentum`` below 1, ...) are checked before anything is built.
    """


@registration("lr_schedule", ("Optimizer.lr", "named"), injected=("epochs", "step_each_epoch"), trial=True)
def corolla_lr_schedules() -> Components:
    """Give learning-rate schedules, named in ``Optimizer.lr.name`` (``Cosine``,
    ``Piecewise``, ...). Each factory is called with the section's parameters plus
    ``epochs`` and ``step_each_epoch``, and returns an :class:`LrSchedule`. The config
    check makes one first, with ``Global.epochs`` and a stand-in 1024 steps an epoch."""


@registration("postprocess", ("Infer.PostProcess", "named"))
def corolla_postprocesses() -> Components:
    """Give post-processes, named in ``Infer.PostProcess.name`` (``Topk``,
    ``ThreshOutput``, ...): what ``infer`` and ``predict`` make of the model's
    scores. Each factory returns a :class:`PostProcess`; ``export`` records its
    config in ``inference.yml``."""


@registration("callback", ("Global.callbacks", "items"))
def corolla_callbacks() -> Components:
    """Give callbacks: objects that implement lifecycle hooks (console log,
    metrics file, curves, early stopping). Each factory is called with the
    parameters given in ``Global.callbacks`` and returns an object whose
    lifecycle-hook methods the engine calls for the run."""


def kinds() -> dict[str, Kind]:
    """Every component kind, by name, from the registration hooks above."""
    module = sys.modules[__name__]
    found = (getattr(value, "corolla_kind", None) for value in vars(module).values())
    return {kind.name: kind for kind in found if isinstance(kind, Kind)}


# --- what factories return ---------------------------------------------------


@runtime_checkable
class Loss(Protocol):
    """``loss(outputs, labels) -> {term name: scalar Tensor}``.

    ``outputs`` is the model's output (a Tensor, or a dict of named outputs; a
    composite model's :class:`corolla.api.ModelOutputs`; read it with
    :func:`corolla.api.pick_output`); ``labels`` int64 ``[N]`` with ``-1`` for
    unlabeled samples, or float ``[N, C]`` (multi-label, or soft labels after
    Mixup/Cutmix), or float ``[N, 2, C]`` (multi-label flags, then each class's share of
    positives in the dataset: ``MultiLabelDataset`` with ``label_ratio``). A loss that
    needs labels skips unlabeled rows (multi-label: entries of ``-1``). No term may be
    called ``loss`` (the engine's weighted sum). A loss whose terms are means over the
    labeled rows only sets ``labeled_only = True``: the engine's epoch averages then weight
    each batch's value by its labeled rows, not by all of them.
    """

    def __call__(self, outputs: Any, labels: Any) -> Mapping[str, Any]: ...


@runtime_checkable
class Metric(Protocol):
    """Accumulates over batches; in multi-process evaluation every process sees
    the whole set's outputs."""

    def update(self, outputs: Any, labels: Any) -> Mapping[str, float]:
        """Add a batch; return its values for the step log."""

    def result(self) -> Mapping[str, float]:
        """The values over every batch since the last ``reset``; the first key of the
        first ``Metric.Eval`` entry decides ``best_model``: its highest value, or its lowest
        where the metric has ``lower_is_better = True`` (an error rate)."""

    def reset(self) -> None: ...


@runtime_checkable
class LrSchedule(Protocol):
    """A ``paddle.optimizer.lr.LRScheduler`` with ``by_epoch``: the engine calls
    ``step()`` after every iteration, or after every epoch when ``by_epoch`` is true;
    ``state_dict()`` / ``set_state_dict()`` go into checkpoints."""

    by_epoch: bool

    def step(self) -> None: ...

    def state_dict(self) -> Mapping[str, Any]: ...

    def set_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class Transform(Protocol):
    """``op(sample) -> sample``. Before ``NormalizeImage`` a sample is a uint8 HWC
    NumPy array (encoded bytes before the decoder, the first op); from
    ``NormalizeImage`` on it is float32, HWC, or CHW after ``ToCHWImage`` or an
    ``order: chw`` normaliser. An op that needs another dtype or layout says so with
    ``layout = "hwc"`` / ``"chw"`` (and ``output_layout`` if it changes it).

    Optional attributes take part in the loader's fast paths
    (:mod:`corolla.data.pipeline`): ``decodes``, ``can_defer`` with ``open`` and
    ``finish``, ``takes_undecoded`` with ``on_decode``, ``apply_batch`` (the same
    result on an N-first batch) and ``takes_samples``. An op that also makes labels
    lists their keys in ``makes_labels`` and returns a :class:`corolla.api.LabeledImage`.
    """

    def __call__(self, sample: Any) -> Any: ...


@runtime_checkable
class BatchTransform(Protocol):
    """``op(images, labels) -> (images, labels)`` on NumPy batches: float32 NCHW
    images and int64 ``[N]`` labels in; soft labels float32 ``[N, class_num]`` out
    for a mixing op."""

    def __call__(self, images: Any, labels: Any) -> tuple[Any, Any]: ...


@runtime_checkable
class Dataset(Protocol):
    """A map-style dataset: ``dataset[i]`` is ``(sample, label)``, the sample made by
    the ``transform_ops`` pipeline's per-image part (``pipeline.sample(bytes)``),
    the label an int (``-1`` unlabeled) or a float vector (multi-label; ``[2, C]`` with
    each class's share of positives as its second row).

    Optionally ``check(class_num) -> summary``, run before training without
    decoding: ``summary.images``, ``summary.missing`` (list-file lines of missing
    images) and ``summary.describe()`` (one line for the log)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Any, Any]: ...


@runtime_checkable
class Sampler(Protocol):
    """Batches of dataset indices for this process, one epoch per iteration.

    ``set_epoch(epoch)`` comes before each epoch: draw the epoch's order from
    ``(seed, epoch)`` only, so that a resumed run sees the epochs a straight one does.
    ``len(sampler)`` is the number of batches per epoch, the same every epoch (the lr
    schedule is sized by it). Every process must get the same number of batches.
    ``rank`` and ``world_size`` say which share of the data this process gets
    (``world_size`` 1: the whole set, as ``BatchSampler``); ``batch_size`` is the
    usual number of images per batch.

    A batch is a list of indices, or, to vary the image size from batch to batch
    (multi-scale training), a list of ``(index, width, height)`` items; the sampler
    then lists every ``(width, height)`` it uses in ``image_sizes``, and each
    transform of ``transform_ops`` that sets a ``size`` (or ``resize_short``) makes
    the batch's size instead. Its class says ``varies_image_size = True``, so that the
    config check requires such a transform.
    """

    rank: int
    world_size: int
    batch_size: int

    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self) -> Iterator[list]: ...

    def __len__(self) -> int: ...


@runtime_checkable
class PostProcess(Protocol):
    """``postprocess(scores, files) -> predictions``: ``scores`` a float32 ``[N, C]``
    array of the exported model's output (softmax probabilities unless
    ``Arch.infer_add_softmax`` is false; per-class sigmoid probabilities with
    ``Global.use_multilabel``), ``files`` the N image paths; one
    :class:`corolla.api.Prediction` per image."""

    def __call__(self, scores: Any, files: Sequence[str]) -> list[Any]: ...


@runtime_checkable
class PredictingModel(Protocol):
    """A model that is more than the network that predicts (a distillation model):
    ``inference_model()`` is the layer that ``infer``, ``export`` and ``predict`` run."""

    def inference_model(self) -> Any: ...


@runtime_checkable
class Composite(Protocol):
    """A factory whose arguments name other components (``DistillationModel``'s
    ``models``). ``corolla_children(params, key_path)`` returns ``(kind, spec)`` for
    each, with the defaults the factory will apply, so that the config plan checks
    them before anything is built; the factory then builds them itself with
    :func:`corolla.api.current_registry`, under its own key path,
    :func:`corolla.api.current_key_path` (``Arch``, or ``Arch.models.0.Teacher`` when nested)."""

    def corolla_children(self, params: Mapping[str, Any], key_path: str) -> Iterable[tuple[str, Any]]: ...


# --- lifecycle hooks ---------------------------------------------------------


@attrs.define(eq=False)
class Run:
    """The live state of one training run: what every lifecycle hook receives as ``run``.

    Plugins read it and may set ``stop_training``; the engine owns the rest.
    """

    #: the merged config (a plain dict) and its checked plan (``corolla.config.plan.Plan``)
    config: dict
    plan: Any
    #: the validated ``Global`` section
    settings: Any
    #: the run's folder, where files go
    output_dir: Path
    #: True only in the process that should write files and print (rank 0)
    is_main: bool
    rank: int
    world_size: int
    #: the run's seed (drawn and recorded when the config sets none)
    seed: int
    #: the paddle objects being trained (the model unwrapped from DataParallel)
    model: Any
    optimizer: Any
    lr_schedule: Any
    #: the run's length
    epochs: int
    steps_per_epoch: int
    #: per loader mode ("Train", "Eval"), the line that describes its checked data
    data_summaries: dict[str, str] = attrs.Factory(dict)
    #: the current epoch (1-based) and the steps done so far
    epoch: int = 0
    global_step: int = 0
    start_epoch: int = 1
    #: the best evaluation value so far, its name and epoch
    best_metric: float | None = None
    best_metric_name: str | None = None
    best_epoch: int | None = None
    #: the EMA of the weights (``corolla.engine.ema.ModelEMA``), or None
    ema: Any = None
    #: set it to True to end training after this step (in every process)
    stop_training: bool = False
    #: checkpoint prefixes, or None
    resumed_from: Path | None = None
    last_checkpoint: Path | None = None
    #: when ``corolla_train_end`` is called because training failed: the exception
    error: BaseException | None = None

    @property
    def lr(self) -> float:
        """The learning rate the next optimizer step uses."""
        return float(self.optimizer.get_lr())


@hookspec
def corolla_train_start(run: Run) -> None:
    """Training is about to start (after resume, before the first epoch)."""


@hookspec
def corolla_epoch_start(run: Run, epoch: int) -> None:
    """Epoch ``epoch`` (1-based) is about to start."""


@hookspec
def corolla_step_end(run: Run, epoch: int, step: int, logs: Mapping[str, float]) -> None:
    """A training step ended.

    ``step`` is 1-based within the epoch. ``logs`` holds plain floats for this
    step: ``lr``, ``batch_size``, ``images_per_sec`` (since the last step that
    read the loss), and on the steps that read the loss, ``loss``, each named loss
    term and train metrics such as ``top1``: every step on CPU; on GPU every
    ``Global.print_batch_step``-th step and an epoch's last (a read waits for the GPU).
    """


@hookspec
def corolla_eval_end(run: Run | None, epoch: int, metrics: Mapping[str, float]) -> None:
    """An evaluation ended. ``metrics`` holds ``loss``, each metric value
    (``top1``, ``top5``, ...) and ``images_per_sec``. ``run`` is ``None`` when
    evaluation runs on its own (``corolla eval``)."""


@hookspec
def corolla_epoch_end(run: Run, epoch: int, logs: Mapping[str, float]) -> None:
    """Epoch ``epoch`` ended; ``logs`` holds the epoch averages of the step
    logs and, when evaluation ran this epoch, its metrics prefixed ``eval_``.
    Checkpoints of this epoch are already written."""


@hookspec
def corolla_train_end(run: Run) -> None:
    """Training ended: normally, by ``stop_training``, or by an error, which is then
    ``run.error`` (close files and writers here; the error is raised afterwards)."""
