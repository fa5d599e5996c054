"""CurvePlot: ``<output_dir>/curves.png``, loss and top-1 per epoch, redrawn after every epoch."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from corolla.api import hookimpl


class CurvePlot:
    """Plot train/eval loss and top-1 accuracy against the epoch (main process only).

    A resumed run picks up the earlier epochs from ``metrics.jsonl`` when the
    MetricsLog callback wrote one.
    """

    def __init__(self, filename: str = "curves.png", metric: str = "top1") -> None:
        self.filename = filename
        self.metric = metric
        self.history: list[dict[str, float]] = []

    @hookimpl
    def corolla_train_start(self, run: Any) -> None:
        self.history = []
        log = Path(run.output_dir) / "metrics.jsonl"
        if run.is_main and run.resumed_from is not None and log.is_file():
            for line in log.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if record.get("event") == "epoch" and record["epoch"] < run.start_epoch:
                    self.history.append(record)

    @hookimpl
    def corolla_epoch_end(self, run: Any, epoch: int, logs: Mapping[str, float]) -> None:
        if not run.is_main:
            return
        self.history.append({"epoch": epoch, **logs})
        self.draw(Path(run.output_dir) / self.filename)

    def draw(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        figure, (loss_axes, metric_axes) = plt.subplots(1, 2, figsize=(10, 4))
        for axes, key, title in ((loss_axes, "loss", "loss"), (metric_axes, self.metric, f"{self.metric} accuracy")):
            for prefix, label in (("", "train"), ("eval_", "eval")):
                points = [(h["epoch"], h[prefix + key]) for h in self.history if prefix + key in h]
                if points:
                    xs, ys = zip(*points)
                    axes.plot(xs, ys, marker="o", label=label)
            axes.set_xlabel("epoch")
            axes.set_title(title)
            axes.grid(alpha=0.3)
            if axes.get_legend_handles_labels()[0]:
                axes.legend()
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=80)
        plt.close(figure)
