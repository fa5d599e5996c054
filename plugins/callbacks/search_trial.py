"""SearchTrial: the callback ``corolla search`` adds to each trial's ``Global.callbacks``.

It reports every evaluation of the run to the trial's Optuna study, stops the run when
the study's pruner prunes it (``run.stop_training``, decided on rank 0 and shared with
every rank), and stops it when the search process that started it is gone. The storage
URL comes from the environment variable ``COROLLA_SEARCH_STORAGE`` (it may hold a
password, so it is never written into a config).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from corolla.api import ConfigError, hookimpl, process_alive

STORAGE_ENV = "COROLLA_SEARCH_STORAGE"


class SearchTrial:
    """Report to trial ``trial_id`` of study ``study``.

    ``metric`` is the evaluation value to report (default: the one that picks
    ``best_model``, the first ``Metric.Eval`` value); ``pruner`` names one of
    ``optuna.pruners``' classes and its arguments (``{"class": "MedianPruner", ...}``), or
    is None for no pruning; ``watch_pid`` is the search process.
    """

    def __init__(self, study: str, trial_id: int, metric: str | None = None, pruner: dict | None = None,
                 watch_pid: int | None = None) -> None:
        self.study = study
        self.trial_id = trial_id
        self.metric = metric
        self.pruner = dict(pruner) if pruner else None
        self.watch_pid = watch_pid
        self.trial: Any = None

    @hookimpl
    def corolla_train_start(self, run: Any) -> None:
        if not run.is_main:
            return
        try:
            import optuna
        except ImportError:
            raise ConfigError("Global.callbacks: SearchTrial needs Optuna: pip install 'corolla[search]'") from None
        url = os.environ.get(STORAGE_ENV)
        if not url:
            raise ConfigError(f"Global.callbacks: SearchTrial runs trials of 'corolla search', which sets {STORAGE_ENV}; "
                              "it is not set (to train a trial's config by hand, leave SearchTrial out)")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=self.study, storage=url, pruner=self._make_pruner(optuna))
        self.trial = optuna.trial.Trial(study, self.trial_id)

    def _make_pruner(self, optuna: Any) -> Any:
        if self.pruner is None:
            return optuna.pruners.NopPruner()
        arguments = dict(self.pruner)
        name = arguments.pop("class", None)
        pruner_class = getattr(optuna.pruners, str(name), None)
        if not (isinstance(pruner_class, type) and issubclass(pruner_class, optuna.pruners.BasePruner)):
            raise ConfigError(f"Global.callbacks: SearchTrial.pruner: expected a class of optuna.pruners, found {name!r}")
        return pruner_class(**arguments)

    @hookimpl
    def corolla_step_end(self, run: Any, epoch: int, step: int, logs: Mapping[str, float]) -> None:
        if self.watch_pid is not None and not process_alive(self.watch_pid):
            raise KeyboardInterrupt(f"the corolla search process {self.watch_pid} that started this trial is gone")

    @hookimpl
    def corolla_eval_end(self, run: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        if run is None:
            return
        prune = False
        key = self.metric or run.best_metric_name
        if run.is_main and self.trial is not None and key in metrics:
            if self.trial.user_attrs.get("metric") != key:
                self.trial.set_user_attr("metric", key)
            self.trial.report(float(metrics[key]), epoch)
            prune = self.pruner is not None and self.trial.should_prune()
            if prune:
                self.trial.set_user_attr("pruned_at", epoch)
                print(f"[Search] the study's pruner stops this trial after epoch {epoch} ({key} {metrics[key]:.4f})", flush=True)
        if _from_rank_0(prune, run.world_size):
            run.stop_training = True


def _from_rank_0(flag: bool, world_size: int) -> bool:
    """Rank 0's ``flag``, in every rank of a multi-process run."""
    if world_size == 1:
        return flag
    import paddle

    value = paddle.to_tensor([1 if flag else 0], dtype="int32")
    paddle.distributed.broadcast(value, src=0)
    return bool(int(value.item()))
