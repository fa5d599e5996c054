"""The Optuna side of a search: the storage, one study per stage, and claiming trials so
that workers in several processes, on several machines, never run the same trial twice.

A worker claims a point of a grid stage (values x repeats) by adding an Optuna trial
for it; a point belongs to its lowest-numbered trial that was not dropped (the storage
numbers trials one at a time, also under SQLite, whose transactions cannot be relied on
to hand a waiting trial to one worker only). A worker whose new trial is not the owner
drops it unrun. A TPE stage asks Optuna for new trials; the first ``trials`` of them
that were not dropped make its budget. A trial whose worker is gone (killed: its process
no longer runs, or no heartbeat for :data:`STALE_AFTER` seconds) is dropped as
interrupted, and its point runs again.
"""
from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from corolla.data.placement import process_alive
from corolla.plugin.errors import CorollaError
from corolla.search.spec import Point, Stage, label

#: seconds between a running trial's heartbeats, and without one before it counts as abandoned
HEARTBEAT = 30.0
STALE_AFTER = 300.0
#: trial states as the table shows them
FINISHED = ("complete", "pruned", "failed")


def import_optuna() -> ModuleType:
    """Optuna, imported on use: only ``corolla search`` needs it."""
    try:
        import optuna
    except ImportError:
        raise CorollaError("corolla search needs Optuna: pip install 'corolla[search]' (or: pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def default_storage(output_dir: Path) -> str:
    """The SQLite file ``<output_dir>/search.db``: nothing to set up on one machine."""
    output_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(output_dir / 'search.db').resolve()}"


def open_storage(optuna: ModuleType, url: str) -> Any:
    """Optuna's RDB storage at ``url``. Processes that start together may race to create
    its tables: a failed try is retried."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except Exception as exc:  # sqlalchemy's OperationalError, a missing driver, a bad URL
            if attempt == 5 or isinstance(exc, (ImportError, ValueError)):
                raise CorollaError(f"cannot open the search storage {hide_password(url)}: {exc}") from None
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show it without the part before '@'
        return url.rpartition("@")[2]


@attrs.frozen
class Worker:
    """This process, as trials record who runs them."""

    host: str = attrs.field(factory=socket.gethostname)
    pid: int = attrs.field(factory=os.getpid)
    token: str = attrs.field(factory=lambda: uuid.uuid4().hex[:8])

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    def has_lost(self, trial: Any) -> bool:
        """Whether a running trial's worker is gone."""
        host, _, rest = str(trial.user_attrs.get("worker", "")).partition(":")
        pid, _, token = rest.partition(":")
        if host == self.host and token != self.token and pid.isdigit() and not process_alive(int(pid)):
            return True
        started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
        beat = trial.user_attrs.get("heartbeat") or started
        return time.time() - beat > STALE_AFTER


@attrs.frozen
class Claim:
    """A trial this worker runs: its Optuna number and id, and its values."""

    number: int
    trial_id: int
    labels: tuple[str, ...]
    repeat: int
    settings: dict


def status(trial: Any) -> str:
    """waiting, running, complete, pruned, failed (crashed), interrupted or dropped (never ran)."""
    state = trial.state.name.lower()
    if state == "fail":
        dropped = trial.user_attrs.get("dropped")
        return "failed" if dropped is None else "interrupted" if dropped.startswith("interrupted") else "dropped"
    return {"complete": "complete", "pruned": "pruned", "running": "running", "waiting": "waiting"}.get(state, state)


def point_of(trial: Any) -> Point | None:
    """The grid point (labels, repeat) a trial runs, from its user attributes."""
    point = trial.user_attrs.get("point")
    return Point(tuple(point[0]), int(point[1])) if point else None


class StageStudy:
    """The Optuna study of one stage, named ``<search name>.<stage>``."""

    def __init__(self, optuna: ModuleType, storage: Any, name: str, stage: Stage, fixed: dict, *, seed: int,
                 worker: Worker) -> None:
        self.optuna, self.storage, self.stage, self.worker = optuna, storage, stage, worker
        self.name = f"{name}.{stage.name}"
        self.lock = threading.Lock()
        self.study = optuna.create_study(storage=storage, study_name=self.name, direction="maximize",
                                         load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=seed))
        if stage.sampler == "tpe":  # a worker joining later draws other random first values than the first one
            seed += len(self.study.get_trials(deepcopy=False))
            self.study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        self.study_id = storage.get_study_id_from_name(self.name)
        recorded = self.study.user_attrs.get("fixed")
        if recorded is None:
            self.study.set_user_attr("fixed", fixed)
        elif recorded != fixed:
            raise CorollaError(
                f"study {self.name!r} ran with {recorded} fixed by the earlier stages, and this search now fixes {fixed}: "
                "the search file or its results changed. Start a new search (another output_dir, study_name or --storage)")

    # --- reading ---------------------------------------------------------------

    def trials(self) -> list:
        """Every trial, stale ones (abandoned by a gone worker) dropped first."""
        trials = self.study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.state.name in ("RUNNING", "WAITING") and self.worker.has_lost(trial):
                self.drop(trial.number, f"interrupted: worker {trial.user_attrs.get('worker', '?')} is gone; run again")
        return self.study.get_trials(deepcopy=False)

    def owners(self, trials: list) -> list:
        """The trials that count: for a grid stage, each point's lowest-numbered trial not
        dropped; for a TPE stage, the first ``trials`` trials not dropped."""
        live = [t for t in sorted(trials, key=lambda t: t.number) if status(t) not in ("dropped", "interrupted")]
        if self.stage.sampler == "tpe":
            return live[: self.stage.trials]
        points = set(self.stage.points())
        owners: dict = {}
        for trial in live:
            point = point_of(trial)
            if point is not None and point in points and point not in owners:
                owners[point] = trial
        return list(owners.values())

    def finished(self, trials: list) -> bool:
        owners = self.owners(trials)
        expected = self.stage.trials if self.stage.sampler == "tpe" else len(self.stage.points())
        return len(owners) >= expected and all(status(t) in FINISHED for t in owners)

    def attrs(self, claim: Claim) -> dict:
        return dict(self.storage.get_trial(claim.trial_id).user_attrs)

    # --- claiming ----------------------------------------------------------------

    def claim(self) -> Claim | None:
        """Take a trial to run, or None when every trial is taken. The workers of one process
        claim one at a time (those of other processes may race, and then drop a trial unrun)."""
        with self.lock:
            return self._claim_tpe() if self.stage.sampler == "tpe" else self._claim_grid()

    def _claim_grid(self) -> Claim | None:
        states = self.optuna.trial.TrialState
        owned = {point_of(t) for t in self.owners(self.trials())}
        for point in [p for p in self.stage.points() if p not in owned]:
            nonce = uuid.uuid4().hex
            params = {p.name: text for p, text in zip(self.stage.params, point.labels)}
            self.study.enqueue_trial(params, user_attrs={"point": [list(point.labels), point.repeat], "claim": nonce,
                                                         "worker": str(self.worker), "heartbeat": time.time()})
            trials = self.study.get_trials(deepcopy=False)
            mine = next(t for t in trials if t.user_attrs.get("claim") == nonce)
            owner = next(t for t in self.owners(trials) if point_of(t) == point)
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, mine.number)
            if owner.number != mine.number:  # another worker wants this point too, and asked first
                self.drop(mine.number, f"dropped: trial {owner.number} runs this point")
                continue
            self.storage.set_trial_state_values(trial_id, states.RUNNING)
            running = self.optuna.trial.Trial(self.study, trial_id)
            for param in self.stage.params:
                running.suggest_categorical(param.name, param.labels())
            return Claim(mine.number, trial_id, point.labels, point.repeat, self.stage.values_of(point.labels))
        return None

    def _claim_tpe(self) -> Claim | None:
        if len(self.owners(self.trials())) >= self.stage.trials:
            return None
        trial = self.study.ask()
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        self._mark_mine(trial_id)
        if trial.number not in [t.number for t in self.owners(self.study.get_trials(deepcopy=False))]:
            self.drop(trial.number, "dropped: the stage's trial budget is taken")
            return None
        settings: dict = {}
        labels = []
        for param in self.stage.params:
            if param.values is not None:
                value = param.value_of(trial.suggest_categorical(param.name, param.labels()))
            elif param.integer:
                value = trial.suggest_int(param.name, int(param.low), int(param.high), log=param.log,
                                          step=int(param.step or 1))
            else:  # 4 significant digits: what a person would write (and a readable table)
                value = float(f"{trial.suggest_float(param.name, param.low, param.high, log=param.log, step=param.step):.4g}")
            labels.append(label(value))
            settings.update({key: value for key in param.keys})
        self.storage.set_trial_user_attr(trial_id, "point", [labels, 0])
        return Claim(trial.number, trial_id, tuple(labels), 0, settings)

    def _mark_mine(self, trial_id: int) -> None:
        self.storage.set_trial_user_attr(trial_id, "worker", str(self.worker))
        self.heartbeat(trial_id)

    # --- writing -----------------------------------------------------------------

    def heartbeat(self, trial_id: int) -> None:
        self.storage.set_trial_user_attr(trial_id, "heartbeat", time.time())

    def drop(self, number: int, reason: str) -> None:
        """End a trial without a result: ``interrupted...`` (its point runs again) or ``dropped...`` (never ran)."""
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        try:
            self.storage.set_trial_user_attr(trial_id, "dropped", reason)
            self.storage.set_trial_state_values(trial_id, self.optuna.trial.TrialState.FAIL)
        except self.optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker ended it first

    def finish(self, claim: Claim, state: str, attrs: dict) -> bool:
        """Record a trial's end: ``complete`` (with ``attrs["score"]``), ``pruned`` or ``failed``.
        False when another worker had ended it (it took this worker for gone: a late heartbeat)."""
        states = self.optuna.trial.TrialState
        try:
            for key, value in attrs.items():
                self.storage.set_trial_user_attr(claim.trial_id, key, value)
        except self.optuna.exceptions.UpdateFinishedTrialError:
            return False
        if state == "complete":
            self.study.tell(claim.number, attrs["score"], skip_if_finished=True)
        else:
            self.study.tell(claim.number, state=states.PRUNED if state == "pruned" else states.FAIL, skip_if_finished=True)
        return True
