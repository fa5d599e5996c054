"""The live state of one training run, as lifecycle hooks see it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from corolla.config.sections import GlobalSection


@attrs.define(eq=False)
class Run:
    """What ``corolla_*`` lifecycle hooks receive as ``run`` (see ``corolla.plugin.hookspecs``).

    Plugins read it and may set ``stop_training``; the engine owns the rest.
    """

    config: dict
    settings: GlobalSection
    output_dir: Path
    is_main: bool
    rank: int
    world_size: int
    seed: int
    model: Any
    optimizer: Any
    lr_schedule: Any
    epochs: int
    steps_per_epoch: int
    data_summaries: dict[str, str] = attrs.Factory(dict)
    epoch: int = 0
    global_step: int = 0
    start_epoch: int = 1
    best_metric: float | None = None
    best_metric_name: str | None = None
    best_epoch: int | None = None
    ema: Any = None
    stop_training: bool = False
    resumed_from: Path | None = None
    last_checkpoint: Path | None = None

    @property
    def lr(self) -> float:
        """The learning rate the next optimizer step uses."""
        return float(self.optimizer.get_lr())
