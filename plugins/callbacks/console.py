"""ConsoleLogger: a progress bar per epoch and a log line every ``print_batch_step`` steps."""
from __future__ import annotations

import datetime
import sys
import time
from typing import Any, Mapping

from tqdm import tqdm

from corolla.api import format_values, hookimpl


class ConsoleLogger:
    """Print training progress on the main process.

    ``progress_bar``: show a tqdm bar with rate and ETA (default: only when
    stderr is a terminal, so logs stay clean in files and CI);
    ``print_batch_step``: steps between log lines (default ``Global.print_batch_step``).
    Each line holds the loss terms, train metrics, lr and images/s.
    """

    def __init__(self, progress_bar: bool | None = None, print_batch_step: int | None = None) -> None:
        self.progress_bar = progress_bar
        self.print_batch_step = print_batch_step
        self._bar: tqdm | None = None
        self._started = 0.0
        self._steps_done = 0

    def _say(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    @hookimpl
    def corolla_train_start(self, run: Any) -> None:
        self._started = time.perf_counter()
        self._steps_done = 0
        if run.is_main:
            where = f"resumed from {run.resumed_from}, " if run.resumed_from else ""
            self._say(
                f"[Train] {run.config['Arch']['name']}: {run.epochs} epochs x {run.steps_per_epoch} steps, "
                f"{run.world_size} process(es), {where}output in {run.output_dir}"
            )
            for mode, summary in run.data_summaries.items():
                self._say(f"[Data] {mode}: {summary}")

    @hookimpl
    def corolla_epoch_start(self, run: Any, epoch: int) -> None:
        if not run.is_main:
            return
        show = self.progress_bar if self.progress_bar is not None else sys.stderr.isatty()
        self._bar = tqdm(
            total=run.steps_per_epoch, desc=f"epoch {epoch}/{run.epochs}", unit="step",
            disable=not show, leave=False, dynamic_ncols=True,
        )

    @hookimpl
    def corolla_step_end(self, run: Any, epoch: int, step: int, logs: Mapping[str, float]) -> None:
        if not run.is_main:
            return
        self._steps_done += 1
        if self._bar is not None:
            self._bar.update(1)
            if "loss" in logs:  # on GPU the loss is read on logging steps only
                self._bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
        every = self.print_batch_step or run.settings.print_batch_step
        if step % every == 0 or step == run.steps_per_epoch:
            remaining = run.epochs * run.steps_per_epoch - run.global_step
            per_step = (time.perf_counter() - self._started) / max(1, self._steps_done)
            eta = datetime.timedelta(seconds=round(per_step * remaining))
            self._say(
                f"[Train][Epoch {epoch}/{run.epochs}][Iter {step}/{run.steps_per_epoch}] "
                f"lr: {logs['lr']:.6f}, {format_values(logs)}, "
                f"images/s: {logs['images_per_sec']:.1f}, eta: {eta}"
            )

    @hookimpl
    def corolla_eval_end(self, run: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        if run is None or not run.is_main:  # ``corolla eval`` prints its own result
            return
        line = f"[Eval][Epoch {epoch}] {format_values(metrics)}, images/s: {metrics.get('images_per_sec', 0.0):.1f}"
        if run.best_metric is not None:
            line += f", best {run.best_metric_name}: {run.best_metric:.4f} (epoch {run.best_epoch})"
        self._say(line)

    @hookimpl
    def corolla_epoch_end(self, run: Any, epoch: int, logs: Mapping[str, float]) -> None:
        if not run.is_main:
            return
        self._close_bar()
        train = {k: v for k, v in logs.items() if not k.startswith("eval_")}
        self._say(f"[Train][Epoch {epoch}/{run.epochs}][Avg] {format_values(train)}")

    @hookimpl
    def corolla_train_end(self, run: Any) -> None:
        if not run.is_main:
            return
        self._close_bar()  # still open when an error cut the epoch short
        minutes = (time.perf_counter() - self._started) / 60
        self._say(_done_line(run, minutes) if run.error is None else _stopped_line(run, minutes))

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _done_line(run: Any, minutes: float) -> str:
    best = f", best {run.best_metric_name} {run.best_metric:.4f} at epoch {run.best_epoch}" if run.best_metric is not None else ""
    return f"[Train] done in {minutes:.1f} min after epoch {run.epoch}{best}; checkpoints in {run.output_dir}"


def _stopped_line(run: Any, minutes: float) -> str:
    """The last line of a run that an error or Ctrl-C stopped, with the checkpoints it left."""
    how = "interrupted" if isinstance(run.error, KeyboardInterrupt) else f"stopped by {type(run.error).__name__}"
    when = f"in epoch {run.epoch}" if run.epoch >= run.start_epoch else "before its first epoch"
    names = sorted(path.stem for path in run.output_dir.glob("*.pdparams"))
    left = f"checkpoints in {run.output_dir}: {', '.join(names)}" if names else f"no checkpoint in {run.output_dir}"
    return f"[Train] {how} {when} after {minutes:.1f} min; {left}"
