"""The built-in callbacks: console lines, metrics.jsonl, curves.png, VisualDL."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

import corolla
from corolla.engine.checkpoint import flatten
from corolla.engine.files import write_checkpoint
from corolla.engine.builders import build_callbacks
from corolla.plugin.errors import ConfigError
from corolla.plugins.callbacks.console import ConsoleLogger
from corolla.plugins.callbacks.curves import CurvePlot
from corolla.plugins.callbacks.metrics_log import MetricsLog
from corolla.config.planner import read_plan
from corolla.config.sections import read_global


class FakeRun(types.SimpleNamespace):
    pass


def fake_run(tmp_path: Path, **extra) -> FakeRun:
    settings = read_global({"Global": {"print_batch_step": 2}})
    values = dict(config={"Arch": {"name": "TinyNet"}}, settings=settings, output_dir=tmp_path, is_main=True,
                  epochs=2, steps_per_epoch=3, global_step=0, world_size=1, resumed_from=None, start_epoch=1,
                  best_metric=None, best_metric_name=None, best_epoch=None, epoch=0, model=None, error=None,
                  data_summaries={"Train": "train.txt: 24 images"})
    values.update(extra)
    return FakeRun(**values)


def drive(callback, run: FakeRun) -> None:
    """Two epochs of three steps, evaluation after each epoch, through the real hook calls."""
    registry = corolla.load_registry()
    registry.plugin_manager.register(callback)
    hook = registry.hook
    try:
        hook.corolla_train_start(run=run)
        for epoch in (1, 2):
            run.epoch = epoch
            hook.corolla_epoch_start(run=run, epoch=epoch)
            for step in (1, 2, 3):
                run.global_step += 1
                logs = {"CELoss": 1.0 / run.global_step, "loss": 1.0 / run.global_step, "top1": 0.1 * run.global_step,
                        "lr": 0.01, "batch_size": 8.0, "images_per_sec": 100.0}
                hook.corolla_step_end(run=run, epoch=epoch, step=step, logs=logs)
            metrics = {"loss": 0.5 / epoch, "top1": 0.4 * epoch, "images_per_sec": 50.0}
            run.best_metric, run.best_metric_name, run.best_epoch = metrics["top1"], "top1", epoch
            hook.corolla_eval_end(run=run, epoch=epoch, metrics=metrics)
            hook.corolla_epoch_end(run=run, epoch=epoch, logs={"loss": 0.5, "top1": 0.3 * epoch,
                                                               **{f"eval_{k}": v for k, v in metrics.items()}})
        hook.corolla_train_end(run=run)
    finally:
        registry.plugin_manager.unregister(callback)


def test_console_logger_prints_a_line_every_print_batch_step_and_at_epoch_end(tmp_path, capsys):
    drive(ConsoleLogger(progress_bar=False), fake_run(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "[Data] Train: train.txt: 24 images"
    step_lines = [l for l in lines if "[Iter" in l]
    assert [l.split("[Iter ")[1].split("]")[0] for l in step_lines] == ["2/3", "3/3", "2/3", "3/3"]
    assert step_lines[0].startswith("[Train][Epoch 1/2][Iter 2/3] lr: 0.010000, CELoss: 0.5000, loss: 0.5000, top1: 0.2000")
    assert "images/s: 100.0, eta: 0:00:0" in step_lines[0]
    assert "[Eval][Epoch 2] loss: 0.2500, top1: 0.8000, images/s: 50.0, best top1: 0.8000 (epoch 2)" in lines
    assert "[Train][Epoch 2/2][Avg] loss: 0.5000, top1: 0.6000" in lines
    assert lines[-1].startswith("[Train] done in") and "best top1 0.8000 at epoch 2" in lines[-1]


@pytest.mark.parametrize("error, how", [(KeyboardInterrupt(), "interrupted"), (ValueError("bad"), "stopped by ValueError")])
def test_console_logger_says_a_failed_run_stopped_and_names_only_the_checkpoints_written(tmp_path, capsys, error, how):
    logger, run = ConsoleLogger(progress_bar=False), fake_run(tmp_path, epoch=1, error=error)
    logger.corolla_train_start(run=run)
    logger.corolla_epoch_start(run=run, epoch=1)
    logger.corolla_train_end(run=run)
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"[Train] {how} in epoch 1 after ") and last.endswith(f"; no checkpoint in {tmp_path}")

    for name in ("latest", "epoch_1"):
        (tmp_path / f"{name}.pdparams").write_bytes(b"")
    run.epoch = 2
    logger.corolla_train_end(run=run)
    last = capsys.readouterr().out.splitlines()[-1]
    assert f"{how} in epoch 2 after " in last and last.endswith(f"; checkpoints in {tmp_path}: epoch_1, latest")


def test_console_logger_is_silent_on_other_ranks(tmp_path, capsys):
    drive(ConsoleLogger(progress_bar=False), fake_run(tmp_path, is_main=False))
    assert capsys.readouterr().out == ""


def test_metrics_log_writes_steps_evals_and_epochs_and_appends_on_resume(tmp_path):
    log = MetricsLog()
    drive(log, fake_run(tmp_path))
    records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["step", "step", "eval", "epoch"] * 2
    assert records[0]["global_step"] == 2 and records[0]["loss"] == pytest.approx(0.5)
    assert records[-1] == {**records[-1], "event": "epoch", "epoch": 2, "eval_top1": pytest.approx(0.8)}
    drive(MetricsLog(), fake_run(tmp_path))  # a fresh run starts a new file
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 8


def test_metrics_log_on_resume_drops_what_the_killed_run_logged_after_its_checkpoint(tmp_path):
    drive(MetricsLog(), fake_run(tmp_path))
    path = tmp_path / "metrics.jsonl"
    lines = path.read_text().splitlines()
    # killed during epoch 3 after two step lines (the last cut short), and before epoch 2's line was written
    killed = lines[:-1] + [json.dumps({"event": "step", "epoch": 3, "global_step": 7, "loss": 0.1}), '{"event": "st']
    path.write_text("\n".join(killed) + "\n")
    write_checkpoint(tmp_path / "latest", {".pdstates": flatten({"epoch": 2, "epoch_logs": {"loss": 0.25, "eval_top1": 0.8}})})
    log = MetricsLog()
    log.corolla_train_start(run=fake_run(tmp_path, resumed_from=tmp_path / "latest", epoch=2, global_step=6))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in records] == ["step", "step", "eval", "epoch"] * 2
    assert records[-1]["epoch"] == 2 and records[-1]["loss"] == 0.25 and records[-1]["eval_top1"] == 0.8


def test_curve_plot_writes_a_png_with_both_epochs(tmp_path):
    plot = CurvePlot()
    drive(plot, fake_run(tmp_path))
    png = (tmp_path / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert [h["epoch"] for h in plot.history] == [1, 2]


def test_curve_plot_leaves_the_processs_matplotlib_backend_alone(tmp_path):
    # a notebook's inline backend must survive a training run in its kernel
    matplotlib = pytest.importorskip("matplotlib")
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        drive(CurvePlot(), fake_run(tmp_path))
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("interval, redrawn_after_epoch_2", [(30.0, False), (0.0, True)])
def test_curve_plot_redraws_at_most_every_interval_and_when_training_ends(tmp_path, interval, redrawn_after_epoch_2):
    plot, run, png = CurvePlot(interval=interval), fake_run(tmp_path), tmp_path / "curves.png"
    plot.corolla_train_start(run=run)
    plot.corolla_epoch_end(run=run, epoch=1, logs={"loss": 1.0, "top1": 0.2})
    first = png.read_bytes()  # the first epoch is drawn at once
    plot.corolla_epoch_end(run=run, epoch=2, logs={"loss": 0.5, "top1": 0.6})
    assert (png.read_bytes() != first) is redrawn_after_epoch_2
    plot.corolla_train_end(run=run)
    assert png.read_bytes() != first
    png.unlink()
    plot.corolla_train_end(run=run)  # nothing new since the last drawing
    assert not png.exists()


def test_curve_plot_recovers_earlier_epochs_from_metrics_log_on_resume(tmp_path):
    drive(MetricsLog(), fake_run(tmp_path))
    plot = CurvePlot()
    plot.corolla_train_start(run=fake_run(tmp_path, resumed_from=tmp_path / "latest", start_epoch=2))  # a direct call
    assert [h["epoch"] for h in plot.history] == [1]


def test_default_callbacks_and_visualdl_when_not_installed(monkeypatch):
    registry = corolla.load_registry()
    callbacks = build_callbacks(read_plan({}, registry))
    assert [type(c).__name__ for c in callbacks] == ["ConsoleLogger", "MetricsLog", "CurvePlot"]
    monkeypatch.setitem(sys.modules, "visualdl", None)  # import visualdl fails
    with pytest.raises(ConfigError, match="Global.use_visualdl: found true, but the visualdl package is not installed"):
        build_callbacks(read_plan({"Global": {"use_visualdl": True}}, registry))


def test_visualdl_writes_scalars_through_its_log_writer(tmp_path, monkeypatch):
    written = []

    class LogWriter:
        def __init__(self, logdir):
            self.logdir = logdir

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def close(self):
            written.append("closed")

    monkeypatch.setitem(sys.modules, "visualdl", types.SimpleNamespace(LogWriter=LogWriter))
    registry = corolla.load_registry()
    (callback,) = build_callbacks(read_plan({"Global": {"use_visualdl": True, "callbacks": []}}, registry))
    drive(callback, fake_run(tmp_path))
    assert ("train/loss", 1.0, 1) in written and ("eval/top1", 0.8, 2) in written and written[-1] == "closed"
