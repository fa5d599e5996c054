"""VisualDL: scalars for the VisualDL dashboard (``Global.use_visualdl: true``), when installed."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from corolla.api import ConfigError, hookimpl


class VisualDL:
    """Write step logs, epoch averages and evaluation metrics to ``<output_dir>/vdl``."""

    def __init__(self, log_dir: str = "vdl") -> None:
        try:
            from visualdl import LogWriter
        except ImportError:
            raise ConfigError(
                "Global.use_visualdl: found true, but the visualdl package is not installed "
                "(pip install visualdl), or set it to false"
            ) from None
        self._writer_class = LogWriter
        self.log_dir = log_dir
        self.writer = None

    def _add(self, tag: str, values: Mapping[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(tag=f"{tag}/{key}", value=float(value), step=step)

    @hookimpl
    def corolla_train_start(self, run: Any) -> None:
        if run.is_main:
            self.writer = self._writer_class(logdir=str(Path(run.output_dir) / self.log_dir))

    @hookimpl
    def corolla_step_end(self, run: Any, epoch: int, step: int, logs: Mapping[str, float]) -> None:
        if self.writer is not None:
            self._add("train", logs, run.global_step)

    @hookimpl
    def corolla_eval_end(self, run: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        if run is not None and self.writer is not None:
            self._add("eval", metrics, epoch)

    @hookimpl
    def corolla_train_end(self, run: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
