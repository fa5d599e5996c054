"""MetricsLog: one JSON object per line in ``<output_dir>/metrics.jsonl``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from corolla.api import hookimpl


class MetricsLog:
    """Append the run's numbers to ``metrics.jsonl`` (main process only).

    Each line has ``event`` (``step``, ``eval``, ``epoch``), ``epoch``,
    ``global_step``, ``time`` (Unix seconds) and the values. Step lines are
    written every ``step_interval`` steps (default ``Global.print_batch_step``).
    A fresh run starts a new file; a resumed run appends to it.
    """

    def __init__(self, filename: str = "metrics.jsonl", step_interval: int | None = None) -> None:
        self.filename = filename
        self.step_interval = step_interval
        self.path: Path | None = None

    def _write(self, run: Any, event: str, epoch: int, values: Mapping[str, float], **extra: Any) -> None:
        record = {"event": event, "epoch": epoch, "global_step": run.global_step, "time": round(time.time(), 3)}
        record.update(extra)
        record.update({k: float(v) for k, v in values.items()})
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")

    @hookimpl
    def corolla_train_start(self, run: Any) -> None:
        if not run.is_main:
            return
        self.path = Path(run.output_dir) / self.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if run.resumed_from is None:
            self.path.write_text("", encoding="utf-8")

    @hookimpl
    def corolla_step_end(self, run: Any, epoch: int, step: int, logs: Mapping[str, float]) -> None:
        every = self.step_interval or run.settings.print_batch_step
        if run.is_main and (step % every == 0 or step == run.steps_per_epoch):
            self._write(run, "step", epoch, logs, step=step)

    @hookimpl
    def corolla_eval_end(self, run: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        if run is not None and run.is_main:
            self._write(run, "eval", epoch, metrics)

    @hookimpl
    def corolla_epoch_end(self, run: Any, epoch: int, logs: Mapping[str, float]) -> None:
        if run.is_main:
            self._write(run, "epoch", epoch, logs)
