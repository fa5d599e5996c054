"""EpochCSV: a callback writing one line per epoch to ``<output_dir>/epochs.csv``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from corolla.api import hookimpl


class EpochCSV:
    """Write ``epoch,<key>,...`` with the epoch's averages (and eval values) in the main process."""

    def __init__(self, filename: str = "epochs.csv", keys: Sequence[str] = ("loss", "eval_loss")) -> None:
        self.filename = filename
        self.keys = list(keys)

    @hookimpl
    def corolla_train_start(self, run: Any) -> None:
        if run.is_main:
            Path(run.output_dir, self.filename).write_text(",".join(["epoch", *self.keys]) + "\n")

    @hookimpl
    def corolla_epoch_end(self, run: Any, epoch: int, logs: Mapping[str, float]) -> None:
        if run.is_main:
            values = [f"{logs[key]:.6f}" if key in logs else "" for key in self.keys]
            with Path(run.output_dir, self.filename).open("a") as stream:
                stream.write(",".join([str(epoch), *values]) + "\n")
