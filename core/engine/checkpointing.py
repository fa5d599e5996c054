"""A training run's checkpoints: what they hold, writing them, and resuming from one.

Nothing a user made is lost: a new run never starts over an earlier run's files (see
:func:`claim_run_folder`), and a checkpoint whose weights or evaluation loss are not
finite is never written, so the last good one stays the one to resume from.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import corolla
from corolla.data.atomic import WriteError, unwritable_reason
from corolla.data.placement import process_alive
from corolla.engine.checkpoint import flatten, load_optimizer_arrays, load_weights, model_arrays, optimizer_arrays, unflatten
from corolla.engine.files import SUFFIXES, checkpoint_file, checkpoint_prefix, read_arrays, write_checkpoint
from corolla.plugin.errors import CorollaError, DataError

#: files that mark a folder as holding a run
RUN_FILES = ("metrics.jsonl", "manifest.json")


class TrainingDiverged(CorollaError):
    """The loss, the evaluation loss or the weights became NaN or infinite."""


class RunFolderTaken(CorollaError):
    """The run folder holds an earlier run that the new one would overwrite."""


class Checkpoints:
    """The checkpoints of one training job (``corolla.engine.train``): ``latest``,
    ``epoch_N``, ``best_model`` (and ``best_model_ema``), in PaddleClas's layout."""

    def __init__(self, job: Any) -> None:
        self.job = job

    def save_epoch(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Write ``epoch_N`` (every ``save_interval`` epochs) and ``latest``, with the epoch's logs."""
        if epoch % self.job.settings.save_interval == 0:
            self.save(f"epoch_{epoch}", epoch, logs=logs)
        self.save("latest", epoch, logs=logs)
        self.job.run.last_checkpoint = self.job.run.output_dir / "latest"

    def save(self, name: str, epoch: int, *, weights: Mapping[str, np.ndarray] | None = None, full: bool = True,
             logs: Mapping[str, float] | None = None) -> None:
        """Write checkpoint ``name`` (main process only); ``full`` adds what resuming needs.
        Weights that are not finite are never written: :class:`TrainingDiverged`."""
        if not self.job.run.is_main:
            return
        arrays = weights if weights is not None else model_arrays(self.job.model)
        bad = [key for key, value in arrays.items() if value.dtype.kind == "f" and not np.isfinite(value).all()]
        if bad:
            raise self.diverged(f"the weights are no longer finite after epoch {epoch} ({len(bad)} tensors, "
                                f"e.g. {', '.join(bad[:3])}); {name} was not written")
        files = {".pdparams": arrays}
        if full:
            files[".pdopt"] = optimizer_arrays(self.job.optimizer, self.job.trainable)
            files[".pdstates"] = flatten({**self.states(epoch), "epoch_logs": dict(logs or {})})
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
            "lr_config": _schedule_config(self.job),
            "loss_scaler": self.job.precision.state(),
            "corolla_version": corolla.__version__,
        }

    def diverged(self, what: str) -> TrainingDiverged:
        """The error that stops a diverged run, naming the checkpoint to go back to."""
        last = self.job.run.last_checkpoint
        if last is None:
            resume = "no checkpoint was written yet; start again with a lower Optimizer.lr.learning_rate"
        else:
            resume = (f"the last good checkpoint is {last}: resume with -o Global.checkpoints={last} and a lower "
                      f"learning rate (-o Optimizer.lr.learning_rate=...), which takes effect from the resumed step")
        return TrainingDiverged(f"{what}; training stopped: {resume}. Gradient clipping (Optimizer.clip_norm) also helps.")

    def _restore_schedule(self, states: Mapping[str, Any]) -> bool:
        """The saved schedule state, or, when ``Optimizer.lr`` or the run's length changed
        since the checkpoint, the new schedule advanced to the resumed step (said in one
        line; returns True)."""
        schedule = self.job.schedule
        saved, now = states.get("lr_config"), _schedule_config(self.job)
        if saved is None or saved == now:
            schedule.set_state_dict(states["lr_schedule"])
            return False
        before = json.loads(saved)
        steps = int(states["lr_schedule"].get("last_epoch", 0))
        if not schedule.by_epoch and before.get("step_each_epoch") != self.job.updates_per_epoch:
            # another batch size: the saved step count is in the old epochs' steps
            steps = int(states["epoch"]) * self.job.updates_per_epoch
        for _ in range(steps):
            schedule.step()
        changes = _describe_changes(before, json.loads(now))
        unit = "epoch" if schedule.by_epoch else "step"
        total = self.job.settings.epochs * (1 if schedule.by_epoch else self.job.updates_per_epoch)
        warnings.warn(f"Optimizer.lr or the run's length changed since the checkpoint ({changes}): the new schedule takes effect "
                      f"from its {unit} {steps} of {total}, where the run resumes (learning rate now {schedule():.6g})",
                      UserWarning, stacklevel=2)
        return True

    def resume(self, checkpoint: Path, states: Mapping[str, Any]) -> None:
        """Continue from ``checkpoint`` (a prefix, or any of its files) whose ``states`` were read."""
        run = self.job.run
        prefix = checkpoint_prefix(checkpoint)
        load_weights(self.job.model, prefix, key_path="Global.checkpoints", strict=True)
        optimizer_state = read_arrays(checkpoint_file(prefix, ".pdopt"), "Global.checkpoints")
        with warnings.catch_warnings():  # Paddle's LinearWarmup warns about its own nested state
            warnings.filterwarnings("ignore", message="There are some unused values in state_dict")
            if self._restore_schedule(states):  # the optimizer keeps a copy of the schedule's state: the new one
                optimizer_state = {k: v for k, v in optimizer_state.items() if not k.startswith("LR_Scheduler/")}
                optimizer_state.update(flatten({"LR_Scheduler": self.job.schedule.state_dict()}))
            load_optimizer_arrays(self.job.optimizer, self.job.trainable, optimizer_state)
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
        if run.start_epoch > run.epochs:
            warnings.warn(f"Global.checkpoints: {prefix} is after epoch {run.epoch} and Global.epochs is {run.epochs}: "
                          "nothing is left to train (raise Global.epochs to train on)", UserWarning, stacklevel=2)


def read_states(prefix: str) -> dict[str, Any]:
    """The ``.pdstates`` of checkpoint ``prefix`` (``Global.checkpoints``: a prefix or any of its files), nested again."""
    file = checkpoint_file(prefix, ".pdstates")
    states = unflatten(read_arrays(file, "Global.checkpoints"))
    if "epoch" not in states or "lr_schedule" not in states:
        found = sorted(states)
        shown = ", ".join(found[:5]) + (f", ... ({len(found)} in all)" if len(found) > 5 else "")
        raise DataError(
            f"Global.checkpoints: {file} is not a corolla training state (it has no epoch and lr_schedule; "
            f"found {shown or 'nothing'}); to start from weights only, use Global.pretrained_model"
        )
    return states


class RunLock:
    """``<run folder>/.lock``, holding the pid of the process writing the folder: a second
    training process pointed at the same folder stops with an error naming the first. A lock
    left by a process that no longer runs (killed) is taken over."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from exc
        for _ in range(2):
            try:
                # 0o666 less the umask, as open() makes files (os.open's default is 0o777)
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and process_alive(owner):
                    raise RunFolderTaken(f"{self.path.parent} is being written by another training process (pid {owner}); "
                                         "wait for it, or set another Global.output_dir") from None
                self.path.unlink(missing_ok=True)  # left by a process that was killed
                continue
            except OSError as exc:
                raise self._unwritable(exc) from exc
            with os.fdopen(handle, "w") as stream:
                stream.write(str(os.getpid()))
            return
        raise RunFolderTaken(f"could not lock {self.path}")

    def _unwritable(self, exc: OSError) -> WriteError:
        """The run folder cannot be made or written (read-only, no permission, a file in the way)."""
        folder = self.path.parent
        return WriteError(f"Global.output_dir: cannot write the run folder {folder}: {unwritable_reason(folder, exc)}; "
                          "set Global.output_dir to a folder this user can write")

    def release(self) -> None:
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; ``resume`` says how to go on (``corolla train`` prints it)."""

    def __init__(self, resume: str) -> None:
        super().__init__(resume)
        self.resume = resume


def resume_advice(folder: Path) -> str:
    """How to go on with the interrupted run in ``folder``, in the words of the refusal of a
    folder that holds an earlier run (:func:`claim_run_folder`)."""
    if (resumable := _resumable(folder)) is not None:
        return f"resume it by adding -o Global.checkpoints={resumable} to the same command"
    if any(p.suffix in SUFFIXES for p in folder.glob("*")):
        return f"no training state was written in {folder}: start anew with 'corolla train --overwrite'"
    return (f"no checkpoint was written in {folder}: the same command starts anew (it moves this run's logs "
            f"to {folder.name}.before-<time>)")


def _resumable(folder: Path) -> Path | None:
    """The checkpoint to resume ``folder``'s run from: ``latest``, else the last ``epoch_N``, else
    ``best_model`` (a run stopped while writing its first epoch's checkpoints has only that)."""
    epochs = [p for p in folder.glob("epoch_*.pdstates") if p.stem.removeprefix("epoch_").isdigit()]
    epochs.sort(key=lambda p: int(p.stem.removeprefix("epoch_")), reverse=True)
    found = next((p for p in (folder / "latest.pdstates", *epochs, folder / "best_model.pdstates") if p.is_file()), None)
    return found.with_suffix("") if found is not None else None


def claim_run_folder(folder: Path, *, resuming_from: str | None, overwrite: bool) -> Path | None:
    """Make sure a new run does not destroy an earlier one in ``folder``.

    A folder with another run's checkpoints is refused (:class:`RunFolderTaken` says how
    to resume it or keep it), unless the run resumes from a checkpoint in it, or
    ``overwrite`` is set: then the earlier run is moved aside, to
    ``<folder>.before-<UTC time>``, and that path is returned. An earlier run that left
    logs but no checkpoint (it failed in its first epoch) has nothing to resume: it is
    moved aside without asking.
    """
    if (folder / ".lock").is_file():
        RunLock(folder).acquire()  # fails while another process writes the folder
        RunLock(folder).release()
    if not folder.is_dir():
        return None
    earlier = sorted(p.name for p in folder.iterdir() if p.suffix in SUFFIXES or p.name in RUN_FILES)
    if not earlier:
        return None
    if resuming_from is not None and Path(resuming_from).resolve().parent == folder.resolve():
        return None
    if not overwrite and any(Path(name).suffix in SUFFIXES for name in earlier):
        resumable = _resumable(folder)
        latest = f" (its last checkpoint, {resumable.name}, is after epoch {_epoch_of(resumable)})" if resumable else ""
        resume = f"Resume it with -o Global.checkpoints={resumable}, s" if resumable else "S"
        raise RunFolderTaken(
            f"{folder} holds an earlier run{latest}: {', '.join(earlier[:6])}{', ...' if len(earlier) > 6 else ''}. "
            f"{resume}tart a new run in another folder "
            f"(-o Global.output_dir=...), or keep the earlier run aside and start anew with 'corolla train --overwrite' "
            f"(it moves the earlier run to {folder.name}.before-<time>)"
        )
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    aside = folder.with_name(f"{folder.name}.before-{stamp}")
    folder.rename(aside)
    return aside


def _epoch_of(prefix: Path) -> str:
    try:
        return str(read_states(str(prefix))["epoch"])
    except CorollaError:
        return "?"


def _schedule_config(job: Any) -> str:
    """What the schedule was made from: ``Optimizer.lr`` as the plan read it, and the run's
    length, as text (stored with each checkpoint)."""
    part = job.plan.lr_schedule
    made = {"name": part.name, **part.params, "epochs": job.settings.epochs, "step_each_epoch": job.updates_per_epoch}
    return json.dumps(made, sort_keys=True, default=str)


def _describe_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    keys = sorted(set(before) | set(after))
    return ", ".join(f"{key} {before.get(key)!r} -> {after.get(key)!r}" for key in keys if before.get(key) != after.get(key))


def finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)
