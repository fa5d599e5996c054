"""The training loop: epochs of steps, evaluation, checkpoints, lifecycle hooks."""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from pathlib import Path
from typing import ContextManager

import paddle

from corolla.config.plan import Plan
from corolla.data.checks import check_same_classes
from corolla.data.loader import build_dataloader
from corolla.data.placement import Environment, cpu_thread_count, epoch_seed, seed_everything, setup_environment
from corolla.engine.builders import Trainable, build_callbacks, build_metrics, build_model, build_optimizer
from corolla.engine.checkpoint import load_weights
from corolla.engine.checkpointing import (Checkpoints, RunLock, TrainingDiverged, TrainingInterrupted, claim_run_folder, finite,
                                          read_states, resume_advice)
from corolla.engine.collectives import mean_over_ranks
from corolla.engine.ema import ModelEMA
from corolla.engine.eval_engine import EvalEngine
from corolla.engine.evaluate import deciding_metric, evaluate, improves
from corolla.data.atomic import TEMP_SUFFIX
from corolla.engine.loss import TermMeans, build_loss, labeled_rows
from corolla.engine.loss_log import LossLog, StepInfo
from corolla.engine.manifest import build_manifest, write_manifest
from corolla.engine.precision import Precision
from corolla.engine.train_step import TrainStep
from corolla.plugin.errors import DataError
from corolla.plugin.hookspecs import Run


class _Job:
    """Everything one training run builds, and the loop over it."""

    def __init__(self, plan: Plan, *, distributed: bool, overwrite: bool) -> None:
        self.plan = plan
        self.registry = registry = plan.registry
        self.settings = settings = plan.settings
        resume_states = read_states(settings.checkpoints) if settings.checkpoints else None
        seed = settings.seed if settings.seed is not None else (resume_states or {}).get("seed")
        self.env: Environment = setup_environment(settings.device, seed, distributed=distributed)
        output_dir = Path(settings.output_dir) / plan.model.part.name
        self.lock = RunLock(output_dir) if self.env.is_main else None
        self.moved_aside = (claim_run_folder(output_dir, resuming_from=settings.checkpoints, overwrite=overwrite)
                            if self.env.is_main else None)

        self.model = _sync_batch_norm(build_model(plan), plan.model.use_sync_bn, self.env)
        if settings.pretrained_model and not settings.checkpoints:
            load_weights(self.model, settings.pretrained_model, key_path="Global.pretrained_model")

        where = {"class_num": plan.model.class_num, "seed": self.env.seed, "rank": self.env.rank,
                 "world_size": self.env.world_size, "image_shape": settings.image_shape, "device": self.env.device}
        self.train_loss = build_loss(plan.losses["Train"], registry, "Loss.Train")
        self.train_loader = build_dataloader(plan.loaders["Train"], registry, **where, labels_needed=self.train_loss.needs_labels)
        steps_per_epoch = len(self.train_loader)
        if steps_per_epoch == 0:
            raise DataError("DataLoader.Train: the training set gives no batch (empty list file, or drop_last with too few samples)")
        self.update_freq = _update_freq(settings.update_freq, steps_per_epoch)
        steps_per_epoch -= steps_per_epoch % self.update_freq  # as PaddleClas: every epoch ends with an update
        self.updates_per_epoch = steps_per_epoch // self.update_freq
        self.eval_loader = (
            build_dataloader(plan.loaders["Eval"], registry, **where)
            if settings.eval_during_train and "Eval" in plan.loaders
            else None
        )
        if self.eval_loader is not None:
            check_same_classes(self.train_loader.dataset, self.eval_loader.dataset, "Eval")
        self.eval_loss = build_loss(plan.losses["Eval"], registry, "Loss.Eval") if plan.losses["Eval"] else None
        self.train_metrics = build_metrics(plan, "Train")
        self.eval_metrics = build_metrics(plan, "Eval")
        self.eval_engine = EvalEngine(settings.eval_engine, device=self.env.device,
                                      threads=cpu_thread_count(self.env.world_size))

        self.trainable = Trainable(self.model, self.train_loss)
        optimizer, self.schedule = build_optimizer(
            plan, self.trainable, epochs=settings.epochs, steps_per_epoch=self.updates_per_epoch
        )
        self.precision = Precision(plan.amp, self.env.device)
        self.model, self.optimizer = self.precision.decorate(self.model, optimizer)
        self.ema = ModelEMA(self.model, plan.ema.decay) if plan.ema else None
        self.step = TrainStep(self.model, self.train_loss, to_static=settings.to_static,
                              distributed=self.env.distributed, class_num=plan.model.class_num)
        self.forward_model = self.step.eager_model
        # on GPU the loss is read on logging steps only (a read waits for the device)
        self.loss_log = LossLog(self.env.world_size, settings.print_batch_step if self.env.device == "gpu" else 1)
        self.best_ema: float | None = None

        self.run = Run(
            config=plan.config,
            plan=plan,
            settings=settings,
            output_dir=output_dir,
            is_main=self.env.is_main,
            rank=self.env.rank,
            world_size=self.env.world_size,
            seed=self.env.seed,
            model=self.model,
            optimizer=self.optimizer,
            lr_schedule=self.schedule,
            epochs=settings.epochs,
            steps_per_epoch=steps_per_epoch,
            data_summaries={loader.mode: loader.summary
                            for loader in (self.train_loader, self.eval_loader) if loader is not None},
            ema=self.ema,
        )
        self.checkpoints = Checkpoints(self)
        if resume_states is not None:
            self.checkpoints.resume(Path(settings.checkpoints), resume_states)

    # --- the loop ---------------------------------------------------------------

    def fit(self) -> Run:
        if self.lock is not None:
            self.lock.acquire()
        try:
            with self.registry.callbacks(build_callbacks(self.plan)):
                self._loop()
        finally:
            if self.lock is not None:
                self.lock.release()
        return self.run

    def _loop(self) -> None:
        run, hook = self.run, self.registry.hook
        try:
            if run.is_main:
                if self.moved_aside is not None:
                    print(f"[Train] the earlier run in {run.output_dir} (its logs, and its checkpoints if any) "
                          f"was moved to {self.moved_aside}", flush=True)
                for stale in run.output_dir.glob(f".tmp-*{TEMP_SUFFIX}"):  # left by a killed run
                    stale.unlink()
                write_manifest(run.output_dir, build_manifest(
                    self.plan, job="train", seed=run.seed, world_size=run.world_size,
                    device=self.env.device, resumed_from=run.resumed_from,
                ))
            hook.corolla_train_start(run=run)
            for epoch in range(run.start_epoch, run.epochs + 1):
                run.epoch = epoch
                seed_everything(epoch_seed(run.seed, epoch, run.rank))
                self.train_loader.set_epoch(epoch)
                hook.corolla_epoch_start(run=run, epoch=epoch)
                logs = self._train_epoch(epoch)
                if self.schedule.by_epoch:
                    self.schedule.step()
                logs.update({f"eval_{k}": v for k, v in self._evaluate_keeping_the_epoch(epoch, logs).items()})
                self.checkpoints.save_epoch(epoch, logs)
                hook.corolla_epoch_end(run=run, epoch=epoch, logs=logs)
                if run.stop_training:
                    break
        except KeyboardInterrupt as exc:
            run.error = TrainingInterrupted(resume_advice(run.output_dir))
            raise run.error from exc
        except BaseException as exc:
            run.error = exc
            raise
        finally:
            hook.corolla_train_end(run=run)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        run, hook = self.run, self.registry.hook
        self.forward_model.train()
        for metric in self.train_metrics:
            metric.reset()
        terms = TermMeans(self.train_loss.labeled_terms)
        since_read, self.step.compile_s = 0, 0.0
        last = time.perf_counter()
        freq = self.update_freq
        for step, (images, labels) in enumerate(self.train_loader, start=1):
            lr = float(self.optimizer.get_lr())
            batch = int(labels.shape[0])
            update = step % freq == 0  # Global.update_freq: gradients add up over freq batches, then one update
            due = self.loss_log.due(step, run.steps_per_epoch)
            with self._gradient_sync(update):
                with self.precision.autocast():
                    outputs, losses = self.step(images, labels)
                self.loss_log.add(losses, StepInfo(step, run.global_step + 1, lr, batch), labeled_rows(labels))
                values = self._read_losses(epoch, terms) if due else {}
                self.precision.backward(losses["loss"] / freq if freq > 1 else losses["loss"])
            if update:
                self.precision.step(self.optimizer)
                if not self.schedule.by_epoch:
                    self.schedule.step()
                if self.ema is not None:
                    self.ema.update(self.model)
            for metric in self.train_metrics if due else ():  # Metric.Train: on the steps that read (GPU: logging)
                values.update(metric.update(outputs, labels))
            del outputs, losses  # the graph of this step must not outlive it
            since_read += batch
            run.global_step += 1
            now = time.perf_counter()
            logs = {**values, "lr": lr, "batch_size": float(batch),
                    "images_per_sec": since_read * run.world_size / max(now - last - self.step.compile_s, 1e-9)}
            if due:
                last, since_read, self.step.compile_s = now, 0, 0.0
            hook.corolla_step_end(run=run, epoch=epoch, step=step, logs=logs)
            if run.stop_training or step == run.steps_per_epoch:  # the batches past the last update are left
                break
        self._read_losses(epoch, terms)  # steps since the last read (a callback stopped the epoch)
        averages = terms.means()
        for metric in self.train_metrics:
            averages.update(metric.result())
        averages = mean_over_ranks(averages, run.world_size)
        averages["lr"] = float(self.optimizer.get_lr())
        return averages

    def _gradient_sync(self, update: bool) -> ContextManager:
        """Between updates the processes of a distributed run keep their gradients to
        themselves (``no_sync``); the update's backward pass averages the sums."""
        return self.step.no_sync() if self.env.distributed and not update else contextlib.nullcontext()

    def _read_losses(self, epoch: int, terms: TermMeans) -> dict[str, float]:
        """Read the steps' loss terms kept since the last read (averaged over ranks) into the epoch's
        ``terms``; stop at the first NaN or inf. Returns the last step's terms."""
        shown: dict[str, float] = {}
        for row in self.loss_log.read():
            info, values = row.info, row.values
            if not math.isfinite(values["loss"]):
                raise self.checkpoints.diverged(
                    f"the loss became {values['loss']} at epoch {epoch}, step {info.step} "
                    f"(global step {info.global_step}) with lr {info.lr:.6g}"
                )
            shown = terms.add(values, info.batch, row.labeled)
        return shown

    def _evaluate_keeping_the_epoch(self, epoch: int, logs: dict[str, float]) -> dict[str, float]:
        """Evaluate; when the evaluation set cannot be read, the epoch's training is kept in ``latest`` first."""
        try:
            return self._maybe_evaluate(epoch)
        except DataError as exc:
            self.checkpoints.save_epoch(epoch, logs)
            raise type(exc)(f"{exc}. Epoch {epoch} is trained and saved, not evaluated: fix DataLoader.Eval, then "
                            f"{resume_advice(self.run.output_dir)}") from exc

    def _maybe_evaluate(self, epoch: int) -> dict[str, float]:
        run, settings = self.run, self.settings
        due = self.eval_loader is not None and epoch % settings.eval_interval == 0 and epoch >= settings.start_eval_epoch
        if not due:
            return {}
        kwargs = dict(metrics=self.eval_metrics, loss_fn=self.eval_loss, precision=self.precision,
                      rank=run.rank, world_size=run.world_size, show_progress=run.is_main, engine=self.eval_engine)
        metrics = evaluate(self.forward_model, self.eval_loader, **kwargs)
        if not finite(metrics.get("loss")):
            last = getattr(self.train_loader.sampler, "last_batch", lambda: 0)()
            small = (f" (the training set's last batch holds {last} image(s): BatchNorm statistics of so small a batch can "
                     "break; DataLoader.Train.sampler.drop_last: true leaves it out)") if 0 < last < 8 else ""
            raise self.checkpoints.diverged(f"the evaluation loss became {metrics['loss']} after epoch {epoch}{small}; "
                                            "no checkpoint of this epoch was written")
        key, lower = deciding_metric(metrics, self.eval_metrics)
        if key is not None and improves(metrics[key], run.best_metric, lower):
            run.best_metric, run.best_metric_name, run.best_epoch = metrics[key], key, epoch
            self.checkpoints.save("best_model", epoch)
        if self.ema is not None:
            with self.ema.applied(self.model):
                ema_metrics = evaluate(self.forward_model, self.eval_loader, **kwargs)
            metrics.update({f"ema_{k}": v for k, v in ema_metrics.items()})
            if key is not None and improves(ema_metrics[key], self.best_ema, lower):
                self.best_ema = ema_metrics[key]
                self.checkpoints.save("best_model_ema", epoch, weights=self.ema.arrays(), full=False)
        self.registry.hook.corolla_eval_end(run=run, epoch=epoch, metrics=metrics)
        return metrics


def _update_freq(update_freq: int, steps_per_epoch: int) -> int:
    """``Global.update_freq``, or 1 (with a warning, as PaddleClas) when an epoch has fewer batches."""
    if update_freq > steps_per_epoch:
        warnings.warn(f"Global.update_freq: {update_freq} is more than the {steps_per_epoch} batches of an epoch; "
                      "training with update_freq 1 (an update per batch)", UserWarning, stacklevel=3)
        return 1
    return update_freq


def _sync_batch_norm(model: paddle.nn.Layer, use_sync_bn: bool, env: Environment) -> paddle.nn.Layer:
    """PaddleClas's ``Arch.use_sync_bn``: BatchNorm statistics over all GPUs of a
    multi-process run (Paddle has no SyncBatchNorm on CPU)."""
    if not use_sync_bn or not env.distributed:
        return model
    if env.device == "gpu":
        return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    warnings.warn(
        "Arch.use_sync_bn: Paddle has no SyncBatchNorm on CPU; each process keeps its own BatchNorm statistics",
        UserWarning,
        stacklevel=2,
    )
    return model


def train(plan: Plan, *, distributed: bool = True, overwrite: bool = False) -> Run:
    """Run ``corolla train``: build everything from the plan, resume if
    ``Global.checkpoints`` is set, and train for ``Global.epochs``.

    A run folder that holds an earlier run is refused unless the run resumes it, or
    ``overwrite`` moves the earlier run aside (see :func:`claim_run_folder`). Ctrl-C
    raises :class:`TrainingInterrupted`, which says how to resume.
    """
    return _Job(plan.require("train"), distributed=distributed, overwrite=overwrite).fit()
