"""The hooks a corolla plugin may implement: the contract for plugin authors.

A plugin is a module (or any object) registered under the ``corolla.plugins``
entry-point group of its distribution::

    [project.entry-points."corolla.plugins"]
    my_models = "my_models.plugin"

and implements any of the hooks below with ``@corolla.hookimpl``. Implement
only what you provide; every hook is optional.

Registration hooks
    Called once per plugin when the registry is built. Each returns a mapping
    from config name (the ``name:`` or list key used in YAML) to a factory: a
    callable whose keyword arguments are the component's config parameters.
    Instead of the callable, a plugin may give a lazy reference
    ``"package.module:attribute"``; it is imported only when the component is
    used, which keeps ``corolla plugins`` fast for plugins built on heavy
    libraries. A value of :class:`corolla.Alias` makes the name a deprecated
    alias of another name of the same kind.

Lifecycle hooks
    Called by the training engine, in every process, for every registered
    plugin and for every callback named in the config. ``run`` is the engine's
    live state; plugins may read it and set ``run.stop_training = True``.
    Its attributes:

    - ``config``: the merged config (a plain ``dict``),
    - ``output_dir``: the run's folder (``pathlib.Path``), where files go,
    - ``is_main``: ``True`` only in the process that should write files and
      print (rank 0 in multi-process training),
    - ``model``, ``optimizer``: the paddle objects being trained,
    - ``epoch`` (1-based) and ``global_step`` (steps done so far),
    - ``epochs`` and ``steps_per_epoch``: the run's length,
    - ``data_summaries``: per loader mode (``"Train"``, ``"Eval"``), the line
      that describes its checked list (images, classes, missing files),
    - ``best_metric``: the best evaluation metric so far (or ``None``), with
      ``best_metric_name`` and ``best_epoch``,
    - ``stop_training``: set it to ``True`` to end training after this step
      (in multi-process training, set it in every process),
    - ``settings`` (the validated ``Global`` section), ``rank``, ``world_size``,
      ``seed``, ``lr`` (the next step's learning rate), ``lr_schedule``, ``ema``
      (or ``None``), ``start_epoch``, ``resumed_from`` and ``last_checkpoint``
      (checkpoint prefixes, or ``None``).

    Every lifecycle hook returns ``None``; all implementations are called.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Union

from corolla.plugin.markers import hookspec

#: What a registration hook returns: config name -> factory, lazy reference or Alias.
Components = Mapping[str, Union[Callable[..., Any], str, Any]]


# --- registration hooks ------------------------------------------------------


@hookspec
def corolla_backbones() -> Components:
    """Give model architectures, named in ``Arch.name`` (or a sub-model of a
    ``DistillationModel``).

    Each factory is called with the remaining keys of the ``Arch`` section as
    keyword arguments (``class_num``, ``pretrained``, ...) and returns a
    ``paddle.nn.Layer``.
    """


@hookspec
def corolla_losses() -> Components:
    """Give losses, named as list items of ``Loss.Train`` / ``Loss.Eval``.

    Each factory is called with the item's parameters and returns a callable
    ``loss(outputs, labels) -> dict[str, Tensor]``: ``outputs`` is the model's
    output (a Tensor, or a dict of named outputs for a ``DistillationModel``),
    ``labels`` the batch's labels (int64 ``[N]`` with ``-1`` for unlabeled
    samples, or float ``[N, C]`` soft labels after Mixup/Cutmix).
    """


@hookspec
def corolla_transforms() -> Components:
    """Give per-sample transforms, named as list items of ``transform_ops``
    (and ``Infer.transforms``).

    Each factory is called with the item's parameters and returns a callable
    ``op(sample) -> sample``. Samples are NumPy arrays (uint8 HWC) or encoded
    bytes before decoding.
    """


@hookspec
def corolla_batch_transforms() -> Components:
    """Give batch transforms, named as list items of ``batch_transform_ops``
    (Mixup, Cutmix, ...).

    Each factory is called with the item's parameters and returns a callable
    ``op(images, labels) -> (images, labels)`` on NumPy batches.
    """


@hookspec
def corolla_datasets() -> Components:
    """Give datasets, named in ``DataLoader.<Mode>.dataset.name``.

    Each factory is called with the section's other keys (``image_root``,
    ``cls_label_path``, ``transform_ops`` already built, ...) and returns a
    map-style dataset (``__len__`` and ``__getitem__``).
    """


@hookspec
def corolla_metrics() -> Components:
    """Give metrics, named as list items of ``Metric.Train`` / ``Metric.Eval``
    (``TopkAcc``, ...). Each factory returns a metric object with
    ``update(outputs, labels) -> dict[str, float]`` (add a batch; return its
    values for the step log), ``result() -> dict[str, float]`` (the values over
    all batches since the last reset) and ``reset()``. In multi-process
    evaluation every process sees the whole set's outputs."""


@hookspec
def corolla_optimizers() -> Components:
    """Give optimizers, named in ``Optimizer.name`` (``Momentum``, ``AdamW``, ...)."""


@hookspec
def corolla_lr_schedules() -> Components:
    """Give learning-rate schedules, named in ``Optimizer.lr.name``
    (``Cosine``, ``Piecewise``, ...)."""


@hookspec
def corolla_callbacks() -> Components:
    """Give callbacks: objects that implement lifecycle hooks (console log,
    metrics file, curves, early stopping). Each factory is called with the
    parameters given in ``Global.callbacks`` and returns an object whose
    ``@hookimpl`` methods the engine registers for the run."""


# --- lifecycle hooks ---------------------------------------------------------


@hookspec
def corolla_train_start(run: Any) -> None:
    """Training is about to start (after resume, before the first epoch)."""


@hookspec
def corolla_epoch_start(run: Any, epoch: int) -> None:
    """Epoch ``epoch`` (1-based) is about to start."""


@hookspec
def corolla_step_end(run: Any, epoch: int, step: int, logs: Mapping[str, float]) -> None:
    """A training step ended.

    ``step`` is 1-based within the epoch. ``logs`` holds plain floats for this
    step: ``loss`` and each named loss term, ``lr``, ``batch_size``,
    ``images_per_sec``, and train metrics such as ``top1`` when computed.
    """


@hookspec
def corolla_epoch_end(run: Any, epoch: int, logs: Mapping[str, float]) -> None:
    """Epoch ``epoch`` ended; ``logs`` holds the epoch averages of the step
    logs and, when evaluation ran this epoch, its metrics prefixed ``eval_``.
    Checkpoints of this epoch are already written."""


@hookspec
def corolla_eval_end(run: Any, epoch: int, metrics: Mapping[str, float]) -> None:
    """An evaluation ended. ``metrics`` holds ``loss``, each top-k accuracy
    (``top1``, ``top5``, ...) and ``images_per_sec``. ``run`` is ``None`` when
    evaluation runs on its own (``corolla eval``)."""


@hookspec
def corolla_train_end(run: Any) -> None:
    """Training ended, normally or by ``stop_training``."""
