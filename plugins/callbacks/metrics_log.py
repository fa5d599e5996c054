"""MetricsLog: one JSON object per line in ``<output_dir>/metrics.jsonl``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from corolla.api import hookimpl, load_state_dict_file, write_text


class MetricsLog:
    """Append the run's numbers to ``metrics.jsonl`` (main process only).

    Each line has ``event`` (``step``, ``eval``, ``epoch``), ``epoch``,
    ``global_step``, ``time`` (Unix seconds) and the values. Step lines are
    written every ``step_interval`` steps (default ``Global.print_batch_step``).
    A fresh run starts a new file; a resumed run first drops the lines written after
    its checkpoint (a killed run logged steps that the resumed run repeats) and adds
    the checkpoint's epoch line if the kill came before it was written, then appends.
    """

    def __init__(self, filename: str = "metrics.jsonl", step_interval: int | None = None) -> None:
        self.filename = filename
        self.step_interval = step_interval
        self.path: Path | None = None

    @staticmethod
    def _record(run: Any, event: str, epoch: int, values: Mapping[str, float], **extra: Any) -> dict[str, Any]:
        record = {"event": event, "epoch": epoch, "global_step": run.global_step, "time": round(time.time(), 3)}
        record.update(extra)
        record.update({k: float(v) for k, v in values.items()})
        return record

    def _write(self, run: Any, event: str, epoch: int, values: Mapping[str, float], **extra: Any) -> None:
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(self._record(run, event, epoch, values, **extra)) + "\n")

    @hookimpl
    def corolla_train_start(self, run: Any) -> None:
        if not run.is_main:
            return
        self.path = Path(run.output_dir) / self.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if run.resumed_from is None:
            write_text(self.path, "")
        else:
            self._rewind(run)

    def _rewind(self, run: Any) -> None:
        """Keep the lines up to the resumed checkpoint, and its epoch line."""
        kept = []
        for line in (self.path.read_text(encoding="utf-8").splitlines() if self.path.is_file() else []):
            try:
                record = json.loads(line)
            except ValueError:  # the last line of a killed run may be cut short
                continue
            if record.get("global_step", 0) <= run.global_step and record.get("epoch", 0) <= run.epoch:
                kept.append(record)
        if not any(r.get("event") == "epoch" and r.get("epoch") == run.epoch for r in kept):
            states = load_state_dict_file(f"{run.resumed_from}.pdstates")
            logs = {key.removeprefix("epoch_logs/"): float(value) for key, value in states.items()
                    if key.startswith("epoch_logs/")}
            if logs:
                kept.append(self._record(run, "epoch", run.epoch, logs))
        write_text(self.path, "".join(json.dumps(record) + "\n" for record in kept))

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
