"""What a search found: each stage's best values (the mean over repeats counts, as in
PaddleClas), and the table of every trial, printed, as CSV and as one PNG."""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

import attrs

from corolla.data.atomic import write_text
from corolla.plugin.errors import CorollaError
from corolla.search.spec import Stage
from corolla.search.study import point_of, status

#: the table's columns, as the CSV names them
COLUMNS = ("stage", "trial", "values", "repeat", "score", "seconds", "state", "folder", "note")


@attrs.frozen
class Row:
    """One trial of the table."""

    stage: str
    trial: int
    values: str
    repeat: int
    score: float | None
    seconds: float | None
    state: str
    folder: str
    note: str


def describe(stage: Stage, labels: Sequence[str]) -> str:
    """``0.01`` for a one-parameter stage, ``lr=0.01, size=192`` for a joint one."""
    if len(stage.params) == 1:
        return labels[0]
    return ", ".join(f"{param.name}={text}" for param, text in zip(stage.params, labels))


def rows_of(stage: Stage, trials: Sequence[Any]) -> list[Row]:
    """The trials that ran (or run) in ``stage``, by number; dropped ones never ran."""
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        state = status(trial)
        point = point_of(trial)
        if state in ("dropped", "waiting") or point is None:
            continue
        attrs_ = trial.user_attrs
        note = attrs_.get("error") or attrs_.get("dropped") or (
            f"pruned after epoch {attrs_['pruned_at']}" if "pruned_at" in attrs_ else "")
        rows.append(Row(stage.name, trial.number, describe(stage, point.labels) if point.labels else "-", point.repeat,
                        attrs_.get("score"), attrs_.get("seconds"), state, attrs_.get("folder", ""), note))
    return rows


def best_of(stage: Stage, owners: Sequence[Any]) -> tuple[tuple[str, ...], Any]:
    """The best labels of a finished stage and its best trial. A grid stage ranks its
    values by the mean score of their completed repeats (the first of equal means wins);
    a TPE stage takes its best trial. Pruned and failed trials do not count."""
    complete = [t for t in owners if status(t) == "complete"]
    if not complete:
        states = ", ".join(f"{status(t)}" for t in owners) or "none ran"
        raise CorollaError(f"stage {stage.name!r}: no trial completed ({states}); see the train.log of its trials")
    if stage.sampler == "tpe":
        best = max(complete, key=lambda t: t.user_attrs["score"])
        return point_of(best).labels, best
    groups: dict[tuple[str, ...], list] = {}
    for trial in complete:
        groups.setdefault(point_of(trial).labels, []).append(trial)
    order = [point.labels for point in stage.points()]
    means = {labels: sum(t.user_attrs["score"] for t in group) / len(group) for labels, group in groups.items()}
    labels = max(sorted(means, key=order.index), key=lambda key: means[key])
    return labels, max(groups[labels], key=lambda t: t.user_attrs["score"])


def format_table(rows: Sequence[Row]) -> str:
    """The table as aligned text."""
    header = ("stage", "trial", "values", "rep", "score", "time", "state", "note")
    cells = [header] + [(r.stage, str(r.trial), r.values, str(r.repeat), _number(r.score, 4), _seconds(r.seconds),
                         r.state, _short(r.note)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """The table as CSV (written whole, then moved into place)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([getattr(row, column) if getattr(row, column) is not None else "" for column in COLUMNS])
    write_text(path, buffer.getvalue())


def plot(rows: Sequence[Row], stages: Sequence[Stage], path: Path) -> None:
    """One PNG: per stage, the score of each trial against its value (grid) or its
    number (TPE); the mean of each value as a line, pruned trials hollow."""
    from matplotlib.figure import Figure  # not pyplot: see CurvePlot.draw
    from matplotlib.ticker import MaxNLocator

    shown = [stage for stage in stages if any(r.stage == stage.name and r.score is not None for r in rows)]
    if not shown:
        return
    columns = min(3, len(shown))
    lines = math.ceil(len(shown) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * lines))
    axes = figure.subplots(lines, columns, squeeze=False)
    for ax, stage in zip(axes.flat, shown):
        scored = [r for r in rows if r.stage == stage.name and r.score is not None]
        if stage.sampler == "tpe":
            xs, names = [r.trial for r in scored], None
        else:
            names = list(dict.fromkeys(describe(stage, p.labels) for p in stage.points()))
            xs = [names.index(r.values) if r.values in names else -1 for r in scored]
        for x, row in zip(xs, scored):
            hollow = row.state != "complete"
            ax.plot(x, row.score, "o", mfc="none" if hollow else "C0", mec="C0")
        if stage.kind == "final":
            ax.set_xticks([0], ["distillation"])
        elif names:
            means = [[r.score for r in scored if r.values == name and r.state == "complete"] for name in names]
            ax.plot(range(len(names)), [sum(m) / len(m) if m else float("nan") for m in means], "-", color="C1", alpha=0.7)
            ax.set_xticks(range(len(names)), [_short(name, 18) for name in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(stage.name)
        if stage.sampler == "tpe":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("trial" if stage.sampler == "tpe" else "value")
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    figure.savefig(temporary, dpi=80)
    os.replace(temporary, path)


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes}:{seconds:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
