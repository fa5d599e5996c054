"""Running one trial: ``corolla train`` in a process of its own (a crash or an
out-of-memory kill ends that trial only), its output in ``<trial folder>/train.log``, its
score read from the run's metrics file."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import attrs

from corolla.plugin.errors import ConfigError, CorollaError
from corolla.search.configs import callbacks_override, write_config
from corolla.search.study import HEARTBEAT

#: where a trial's SearchTrial callback finds the study's storage (never written to a file)
STORAGE_ENV = "COROLLA_SEARCH_STORAGE"
#: exit codes of a training process that was interrupted, not broken (SIGINT, SIGTERM)
_INTERRUPTED = {130, 143, -signal.SIGINT, -signal.SIGTERM}


class Interrupted(Exception):
    """The search was stopped while the trial ran: the trial runs again on resume."""


@attrs.frozen
class Slot:
    """Where one worker runs its trials: environment additions, and the GPUs of a
    multi-GPU trial (started with ``paddle.distributed.launch``)."""

    env: dict = attrs.field(factory=dict)
    gpus: tuple[int, ...] = ()


def slots(jobs: int, gpus: Sequence[int], device: str) -> list[Slot]:
    """One slot per worker: on CPU, ``OMP_NUM_THREADS`` split between them; on GPU, the
    listed GPUs split between them (one GPU: ``CUDA_VISIBLE_DEVICES``, several: a launch)."""
    if device != "gpu":
        if jobs == 1:
            return [Slot()]
        threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
        return [Slot({"OMP_NUM_THREADS": str(max(1, threads // jobs))}) for _ in range(jobs)]
    if jobs == 1 and len(gpus) <= 1:
        return [Slot({"CUDA_VISIBLE_DEVICES": str(gpus[0])} if gpus else {})]
    if len(gpus) < jobs:
        raise ConfigError(f"--jobs {jobs} on GPU gives each worker its own GPUs: list at least {jobs} in the search "
                          f"file's gpus (found {list(gpus) or 'none'})")
    each = len(gpus) // jobs
    groups = [tuple(gpus[i * each:(i + 1) * each]) for i in range(jobs)]
    return [Slot({"CUDA_VISIBLE_DEVICES": str(g[0])}) if len(g) == 1 else Slot(gpus=g) for g in groups]


@attrs.frozen
class Outcome:
    """How a trial ended: ``complete`` / ``pruned`` with a score, or ``failed`` with an error."""

    state: str
    score: float | None
    error: str | None
    seconds: float
    run_dir: Path


@attrs.frozen
class TrialRun:
    """What one trial runs: its config, folder, the SearchTrial callback and the CLI flags."""

    config: dict
    folder: Path
    callback: dict
    plugin_args: tuple[str, ...]
    storage: str
    metric: str | None


def run_trial(trial: TrialRun, slot: Slot, *, heartbeat: Callable[[], None], stop: threading.Event,
              reported: Callable[[], Mapping]) -> Outcome:
    """Train ``trial`` in its own process and read its score; ``heartbeat`` is called while
    it runs, ``reported`` gives what its SearchTrial callback recorded (metric, pruning).
    Raises :class:`Interrupted` when ``stop`` is set or the process was interrupted."""
    config_path = write_config(trial.config, trial.folder / "config.yaml")
    run_dir = trial.folder / str(trial.config["Arch"]["name"])
    callbacks, metrics_name = callbacks_override(trial.config, trial.callback)
    command = [*_launcher(slot, trial.folder), "train", "-c", str(config_path), "-o", callbacks, *trial.plugin_args]
    if (run_dir / "latest.pdstates").is_file():  # an interrupted run of this trial: go on from its last epoch
        command += ["-o", f"Global.checkpoints={run_dir / 'latest'}"]
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        command += ["--overwrite"]
    env = {**os.environ, **slot.env, STORAGE_ENV: trial.storage}
    log = trial.folder / "train.log"
    started = time.monotonic()
    with log.open("a", encoding="utf-8") as stream:
        stream.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
        stream.flush()
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        code = _wait(process, heartbeat, stop)
    seconds = round(time.monotonic() - started, 1)
    if stop.is_set() or code in _INTERRUPTED:
        raise Interrupted(f"exit code {code}")
    if code != 0:
        return Outcome("failed", None, f"{error_of(log, code)} (log: {log})", seconds, run_dir)
    attrs_ = reported()
    metric = trial.metric or attrs_.get("metric")
    try:
        score = read_score(run_dir / metrics_name, metric)
    except CorollaError as exc:
        return Outcome("failed", None, str(exc), seconds, run_dir)
    return Outcome("pruned" if "pruned_at" in attrs_ else "complete", score, None, seconds, run_dir)


def _launcher(slot: Slot, folder: Path) -> list[str]:
    if len(slot.gpus) > 1:  # Paddle's launcher runs a script: the console script beside this Python
        script = Path(sys.executable).with_name("corolla")
        script = str(script) if script.is_file() else shutil.which("corolla")
        if script is None:
            raise CorollaError("a multi-GPU trial runs the 'corolla' console script under paddle.distributed.launch, "
                               "and it is not installed beside this Python nor on PATH (pip install corolla)")
        return [sys.executable, "-m", "paddle.distributed.launch", f"--gpus={','.join(map(str, slot.gpus))}",
                "--log_dir", str(folder / "launch_logs"), script]
    return [sys.executable, "-m", "corolla"]


def _wait(process: subprocess.Popen, heartbeat: Callable[[], None], stop: threading.Event) -> int:
    beat = time.monotonic()
    while True:
        try:
            return process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        if stop.is_set():
            process.terminate()
            try:
                return process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait()
        if time.monotonic() - beat > HEARTBEAT:
            heartbeat()
            beat = time.monotonic()


def read_score(path: Path, metric: str | None) -> float:
    """The best value of ``metric`` over the run's evaluations in its metrics file."""
    if metric is None:
        raise CorollaError(f"the run evaluated nothing to score it by (no eval record in {path}): check "
                           "Global.eval_during_train, Global.start_eval_epoch <= Global.epochs and Metric.Eval")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CorollaError(f"cannot read the trial's metrics file {path}: {exc.strerror or exc}") from None
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    evals = [r for r in records if r.get("event") == "eval"]
    values = [float(r[metric]) for r in evals if metric in r]
    if not values:
        keys = sorted({k for r in evals for k in r} - {"event", "epoch", "global_step", "time"})
        raise CorollaError(f"no evaluation in {path} has {metric!r} ({len(evals)} evaluations; their values: "
                           f"{', '.join(keys) or 'none'}); set the search file's metric: to one of them")
    return max(values)


def error_of(log: Path, code: int) -> str:
    """The line of a failed run's log that says what went wrong."""
    try:
        with log.open("rb") as stream:
            stream.seek(max(0, log.stat().st_size - 65536))
            lines = [line.strip() for line in stream.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
    for line in reversed(lines):
        if "corolla train: error:" in line:
            return line.split("corolla train: error:", 1)[1].strip()
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line):
            return line
    return lines[-1] if lines else f"exit code {code}"
