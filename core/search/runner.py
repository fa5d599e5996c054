"""``corolla search``: the stages in order, each run by the ``--jobs`` workers of this
process (and by every other process sharing its storage); the best values of a stage
are fixed for the next; at the end the table, the plot and the best configs."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import attrs

from corolla.config.load import Config, dump_config
from corolla.config.sections import plugin_registry
from corolla.data.atomic import write_text
from corolla.plugin.errors import ConfigError
from corolla.plugin.registry import Registry
from corolla.search.configs import TrialConfigs, apply_settings, with_output_dir
from corolla.search.progress import Progress, clock
from corolla.search.reading import PRUNERS, Overrides
from corolla.search.results import Row, best_of, describe, format_table, plot, rows_of, write_csv
from corolla.search.spec import Point, SearchSpec, Stage
from corolla.search.study import FINISHED, Claim, StageStudy, Worker, default_storage, hide_password, import_optuna, open_storage, status
from corolla.search.trial import Interrupted, Slot, TrialRun, run_trial, slots

TEACHER = "Arch.models.0.Teacher"


@attrs.frozen
class SearchResult:
    """The best values per stage (as the table writes them), the table and the files written."""

    best: dict
    rows: list
    files: dict


def run_search(spec: SearchSpec, overrides: Overrides = Overrides(), *, storage: str | None = None, jobs: int = 1,
               plugin_args: Sequence[str] = (), registry_of: Callable[[Config], Registry] = plugin_registry,
               poll: float = 5.0) -> SearchResult:
    """Run (or resume, or join) the search of ``spec``; ``storage`` is an Optuna storage URL
    (default: SQLite in ``output_dir``), ``jobs`` the trials this process runs at once,
    ``plugin_args`` the plugin flags each ``corolla train`` gets and ``registry_of`` the
    plugins they load for a config (to check the configs before the first trial), ``poll``
    the seconds an idle worker waits before looking at the study again."""
    if jobs < 1:
        raise ConfigError(f"--jobs: expected 1 or more trials at once, found {jobs}")
    configs = TrialConfigs(spec, overrides, registry_of)
    configs.check_keys(spec.all_stages(), _teacher_keys(spec))  # before the storage (search.db) is made
    return _Search(spec, configs, storage, jobs, tuple(plugin_args), poll).run()


def _teacher_keys(spec: SearchSpec) -> list[str]:
    """The keys of the distillation config that the final run sets in its teacher."""
    teacher = spec.teacher
    if teacher is None:
        return []
    if teacher.algorithm == "udml":
        return [f"{TEACHER}.lr_mult_list"] if any(s.name == "lr_mult_list" for s in spec.stages) else []
    return [f"{TEACHER}.name", f"{TEACHER}.pretrained"]


class _Search:
    def __init__(self, spec: SearchSpec, configs: TrialConfigs, storage: str | None, jobs: int,
                 plugin_args: tuple[str, ...], poll: float) -> None:
        self.optuna = optuna = import_optuna()
        self.spec, self.plugin_args, self.poll = spec, plugin_args, poll
        self.configs = configs
        self.device = str((self.configs.base.get("Global") or {}).get("device", "cpu"))
        self.slots = slots(jobs, spec.gpus, self.device)
        self.url = storage or default_storage(spec.output_dir)
        self.storage = optuna.storages.get_storage(open_storage(optuna, self.url))
        self.worker = Worker()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.progress = Progress()
        self.found: dict[str, Any] = {}      # config key -> best value, over the search stages so far
        self.best: dict[str, dict] = {}      # stage -> its best settings
        self.fixed: dict[str, str] = {}      # stage -> its best values, as the table writes them
        self.teacher: dict[str, Any] = {}    # what the final run sets in its teacher
        self.rows: list[Row] = []
        self.pruners: dict[str, dict | None] = {}  # stage -> the SearchTrial callback's pruner

    def run(self) -> SearchResult:
        stages = self.spec.all_stages()
        self.pruners = {stage.name: self._pruner(stage) for stage in stages}
        where = "GPU " + ",".join(map(str, self.spec.gpus)) if self.device == "gpu" and self.spec.gpus else self.device
        self.progress.say(f"search {self.spec.source}: {len(stages)} stages, {len(self.slots)} worker(s) on {where}; "
                          f"study {self.spec.name!r} in {hide_password(self.url)}")
        if self.spec.dataset is not None:
            self._generate(dict(self.spec.dataset))
        for index, stage in enumerate(stages, start=1):
            if stage.kind == "final" and self.spec.teacher is not None and self.spec.teacher.algorithm == "udml":
                self.teacher = {f"{TEACHER}.lr_mult_list": v for v in self.best.get("lr_mult_list", {}).values()}
            self._stage(index, len(stages), stage)
        self.progress.close()
        return self._finish(stages)

    def _generate(self, arguments: dict) -> None:
        """The search file's ``generate_dataset``, unless it is there already."""
        from corolla.testing.datasets import make_list_dataset

        root = Path(arguments.pop("root"))
        if (root / "train_list.txt").is_file():
            return
        self.progress.say(f"generating a dataset in {root}")
        try:
            make_list_dataset(root, **arguments)
        except TypeError as exc:
            raise ConfigError(f"{self.spec.source}: generate_dataset: {exc}") from None

    def _pruner(self, stage: Stage) -> dict | None:
        """The SearchTrial callback's ``pruner``: Optuna's class and its arguments (checked here)."""
        if stage.pruner is None or stage.kind != "search":
            return None
        arguments = {k: v for k, v in stage.pruner.items() if k != "name"}
        name = PRUNERS[stage.pruner["name"]]
        try:
            getattr(self.optuna.pruners, name)(**arguments)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.spec.source}: stage {stage.name!r}: pruner {stage.pruner['name']} ({name}): {exc}") from None
        return {"class": name, **arguments}

    # --- one stage ---------------------------------------------------------------

    def _stage(self, index: int, count: int, stage: Stage) -> None:
        fixed = dict(self.fixed)
        study = StageStudy(self.optuna, self.storage, self.spec.name, stage, fixed, seed=self.spec.seed, worker=self.worker)
        trials = study.trials()
        total = stage.trials if stage.sampler == "tpe" else len(stage.points())
        done = sum(status(t) in FINISHED for t in study.owners(trials))
        self.progress.stage(f"stage {index}/{count} {stage.name!r}: {self._what(stage)}; "
                            f"fixed: {', '.join(f'{k}={v}' for k, v in fixed.items()) or 'nothing yet'}"
                            + (f"; {done} of {total} trials already finished" if done else ""), total, done)
        if not study.finished(trials):
            self._work_on(study)
        trials = study.trials()
        labels, best = best_of(stage, study.owners(trials))
        self.rows = [r for r in self.rows if r.stage != stage.name] + rows_of(stage, trials)
        write_csv(self.rows, self.spec.output_dir / "trials.csv")
        if stage.kind == "search":
            self.best[stage.name] = stage.values_of(labels)
            self.found.update(self.best[stage.name])
            self.fixed[stage.name] = describe(stage, labels)
        elif stage.kind == "teacher":
            weights = Path(best.user_attrs["run_dir"]) / "best_model"
            self.teacher = {f"{TEACHER}.name": labels[0], f"{TEACHER}.pretrained": str(weights)}
            self.fixed["teacher"] = labels[0]
        scores = [r.score for r in self.rows if r.stage == stage.name and r.state == "complete" and
                  r.values == (describe(stage, labels) if labels else "-")]
        self.progress.say(f"stage {stage.name!r} done: " + (f"best {describe(stage, labels)}, " if labels else "")
                          + f"score {sum(scores) / len(scores):.4f}" + (f" (mean of {len(scores)})" if len(scores) > 1 else ""))

    def _what(self, stage: Stage) -> str:
        if stage.kind == "final":
            return f"the final distillation run ({self.spec.distill_config})"
        if stage.sampler == "tpe":
            return f"tpe over {', '.join(p.name for p in stage.params)}, {stage.trials} trials"
        values = " x ".join(str(len(p.values)) for p in stage.params)
        return f"{values} values x {stage.repeats} run(s) of {', '.join(k for p in stage.params for k in p.keys)}"

    def _work_on(self, study: StageStudy) -> None:
        # Waiting on events, not Thread.join: a join interrupted by Ctrl-C (or SIGTERM) leaves the
        # thread looking finished in Python 3.11, and the workers must get to drop their trials.
        done = [threading.Event() for _ in self.slots]
        for slot, event in zip(self.slots, done):
            threading.Thread(target=self._work, args=(study, slot, event), daemon=True).start()
        try:
            for event in done:
                while not event.wait(0.5):
                    pass
        except KeyboardInterrupt:
            self.stop.set()
            for event in done:
                while not event.wait(0.5):
                    pass
            raise
        if self.errors:
            raise self.errors[0]

    def _work(self, study: StageStudy, slot: Slot, done: threading.Event) -> None:
        try:
            while not self.stop.is_set():
                claim = study.claim()
                if claim is not None:
                    self._run(study, claim, slot)
                elif study.finished(study.trials()):
                    return
                else:  # the rest runs elsewhere (another worker, process or machine)
                    self.stop.wait(self.poll)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            self.errors.append(exc)
            self.stop.set()
        finally:
            done.set()

    def _run(self, study: StageStudy, claim: Claim, slot: Slot) -> None:
        stage = study.stage
        name = Point(claim.labels, claim.repeat).folder() if stage.sampler == "grid" else f"trial_{claim.number}"
        folder = self.spec.output_dir / stage.name / name
        settings = self.teacher if stage.kind == "final" else claim.settings
        config = self.configs.build(stage, settings, self.found, folder, claim.repeat)
        self.storage.set_trial_user_attr(claim.trial_id, "folder", str(folder))
        what = f"{stage.name}={describe(stage, claim.labels)}" if claim.labels else stage.name
        repeat = f" (repeat {claim.repeat})" if stage.repeats > 1 else ""
        self.progress.say(f"trial {claim.number} {what}{repeat} started in {folder}")
        callback = {"SearchTrial": {"study": study.name, "trial_id": claim.trial_id, "metric": self.spec.metric,
                                    "pruner": self.pruners[stage.name], "watch_pid": os.getpid()}}
        trial = TrialRun(config, folder, callback, self.plugin_args, self.url, self.spec.metric)
        try:
            outcome = run_trial(trial, slot, heartbeat=lambda: study.heartbeat(claim.trial_id), stop=self.stop,
                                reported=lambda: study.attrs(claim))
        except Interrupted:
            study.drop(claim.number, "interrupted: the search stopped; the trial runs again when it is resumed")
            self.progress.say(f"trial {claim.number} {what} interrupted")
            return
        attrs_ = {"score": outcome.score, "seconds": outcome.seconds, "run_dir": str(outcome.run_dir), "error": outcome.error}
        if not study.finish(claim, outcome.state, {k: v for k, v in attrs_.items() if v is not None}):
            self.progress.say(f"trial {claim.number} {what}: another worker took this worker for gone and ended the "
                              f"trial; its result stays in {folder} only")
            return
        result = f"score {outcome.score:.4f}" if outcome.score is not None else f"error: {outcome.error}"
        best = self._best_so_far(study)
        self.progress.say(f"trial {claim.number} {what}{repeat} {outcome.state} in {clock(outcome.seconds)}, {result}; {best}")
        self.progress.advance(best)

    def _best_so_far(self, study: StageStudy) -> str:
        complete = [t for t in study.owners(study.study.get_trials(deepcopy=False)) if status(t) == "complete"]
        if not complete:
            return "no score yet"
        best = max(complete, key=lambda t: t.user_attrs["score"])
        point = best.user_attrs.get("point") or [[], 0]
        values = describe(study.stage, point[0]) if point[0] else study.stage.name
        return f"best so far {best.user_attrs['score']:.4f} ({values})"

    # --- the end -------------------------------------------------------------------

    def _finish(self, stages: list[Stage]) -> SearchResult:
        out = self.spec.output_dir
        files = {"table": out / "trials.csv", "plot": out / "search.png", "best_config": out / "best_config.yaml"}
        best = with_output_dir(apply_settings(self.configs.base, self.found), out / "best")
        header = f"# corolla search -c {self.spec.source}: the base config with the best values found\n"
        write_text(files["best_config"], header + dump_config(best))
        final = next((s for s in stages if s.kind == "final"), None)
        if final is not None:
            files["final_config"] = out / "final_config.yaml"
            config = self.configs.build(final, self.teacher, self.found, out / "final")
            header = f"# corolla search -c {self.spec.source}: the final distillation run, with the values found\n"
            write_text(files["final_config"], header + dump_config(config))
        write_csv(self.rows, files["table"])
        plot(self.rows, stages, files["plot"])
        self.progress.say("every trial:\n" + format_table(self.rows))
        chosen = {**self.fixed}
        self.progress.say("best: " + (", ".join(f"{k}={v}" for k, v in chosen.items()) or "-"))
        for key, path in files.items():
            self.progress.say(f"  {key.replace('_', ' ')}: {path}")
        return SearchResult(chosen, list(self.rows), files)
