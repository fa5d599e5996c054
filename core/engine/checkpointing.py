"""A training run's checkpoints: what they hold, writing them, and resuming from one."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import corolla
from corolla.engine.checkpoint import flatten, load_optimizer_arrays, load_weights, model_arrays, optimizer_arrays, unflatten
from corolla.engine.files import checkpoint_file, read_arrays, write_checkpoint
from corolla.plugin.errors import DataError


class Checkpoints:
    """The checkpoints of one training job (``corolla.engine.train``): ``latest``,
    ``epoch_N``, ``best_model`` (and ``best_model_ema``), in PaddleClas's layout."""

    def __init__(self, job: Any) -> None:
        self.job = job

    def save_epoch(self, epoch: int) -> None:
        if epoch % self.job.settings.save_interval == 0:
            self.save(f"epoch_{epoch}", epoch)
        self.save("latest", epoch)
        self.job.run.last_checkpoint = self.job.run.output_dir / "latest"

    def save(self, name: str, epoch: int, *, weights: Mapping[str, np.ndarray] | None = None, full: bool = True) -> None:
        """Write checkpoint ``name`` (main process only); ``full`` adds what resuming needs."""
        if not self.job.run.is_main:
            return
        files = {".pdparams": weights if weights is not None else model_arrays(self.job.model)}
        if full:
            files[".pdopt"] = optimizer_arrays(self.job.optimizer, self.job.trainable)
            files[".pdstates"] = flatten(self.states(epoch))
            if self.job.ema is not None:
                files[".pdema"] = self.job.ema.arrays()
        write_checkpoint(self.job.run.output_dir / name, files)

    def states(self, epoch: int) -> dict[str, Any]:
        run = self.job.run
        return {
            "epoch": epoch,
            "global_step": run.global_step,
            "best_metric": run.best_metric,
            "best_metric_name": run.best_metric_name,
            "best_epoch": run.best_epoch,
            "best_metric_ema": self.job.best_ema,
            "seed": run.seed,
            "world_size": run.world_size,
            "lr_schedule": self.job.schedule.state_dict(),
            "loss_scaler": self.job.precision.state(),
            "corolla_version": corolla.__version__,
        }

    def resume(self, prefix: Path, states: Mapping[str, Any]) -> None:
        run = self.job.run
        load_weights(self.job.model, prefix, key_path="Global.checkpoints", strict=True)
        with warnings.catch_warnings():  # Paddle's LinearWarmup warns about its own nested state
            warnings.filterwarnings("ignore", message="There are some unused values in state_dict")
            load_optimizer_arrays(
                self.job.optimizer, self.job.trainable, read_arrays(checkpoint_file(prefix, ".pdopt"), "Global.checkpoints")
            )
            self.job.schedule.set_state_dict(states["lr_schedule"])
        self.job.precision.load_state(states.get("loss_scaler") or {})
        if self.job.ema is not None:
            self.job.ema.load_arrays(read_arrays(checkpoint_file(prefix, ".pdema"), "Global.checkpoints (EMA is on)"))
        run.start_epoch = int(states["epoch"]) + 1
        run.epoch = int(states["epoch"])
        run.global_step = int(states.get("global_step", 0))
        run.best_metric = states.get("best_metric")
        run.best_metric_name = states.get("best_metric_name")
        run.best_epoch = states.get("best_epoch")
        self.job.best_ema = states.get("best_metric_ema")
        run.resumed_from = prefix
        run.last_checkpoint = prefix


def read_states(prefix: str) -> dict[str, Any]:
    """The ``.pdstates`` of checkpoint ``prefix`` (``Global.checkpoints``), nested again."""
    states = unflatten(read_arrays(checkpoint_file(prefix, ".pdstates"), "Global.checkpoints"))
    if "epoch" not in states or "lr_schedule" not in states:
        raise DataError(
            f"Global.checkpoints: {checkpoint_file(prefix, '.pdstates')} is not a corolla training state "
            f"(found keys {sorted(states)}); to start from weights only, use Global.pretrained_model"
        )
    return states
