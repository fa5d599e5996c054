"""corolla search: reading search files (PaddleClas's and corolla's keys), trial configs, claiming
trials in a shared study, the SearchTrial callback, and whole searches whose trials are real
``corolla train`` processes on tiny generated data: two stages, a teacher stage and the final
distillation run, killed and resumed; a PaddleClas PULC search.yaml; two processes sharing a study."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import engine_support
from corolla.config.load import get_path, shipped_configs
from corolla.plugin.errors import ConfigError, CorollaError
from corolla.search import read_search, run_search, split_overrides
from corolla.search.configs import TrialConfigs, map_key, write_config
from corolla.search.results import Row, plot
from corolla.search.spec import Param, Stage, label, slug
from corolla.search.study import StageStudy, Worker, import_optuna, open_storage, status
from corolla.search.trial import Outcome
from corolla.testing.datasets import make_list_dataset

optuna = pytest.importorskip("optuna", reason="corolla search needs Optuna: pip install 'corolla[search]'")

ROOT = Path(__file__).resolve().parent.parent
PADDLECLAS = ROOT.parent / "shared" / "paddleclas-2.6"
PULC_PERSON = PADDLECLAS / "configs" / "PULC" / "person_exists" / "search.yaml"


#: the backbones of the test searches, for their ``corolla train`` processes: a tiny net whose
#: ``pretrained`` may be a checkpoint prefix (the teacher the search picked), in two widths
SEARCH_NET = """
from functools import partial

import paddle
from corolla.api import hookimpl, load_state_dict_file


class SearchNet(paddle.nn.Layer):
    def __init__(self, class_num, width):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, width, 3, stride=4, padding=1)
        self.pool = paddle.nn.AdaptiveAvgPool2D(1)
        self.fc = paddle.nn.Linear(width, class_num)

    def forward(self, x):
        return self.fc(paddle.flatten(self.pool(paddle.nn.functional.relu(self.conv(x))), 1))


def build(*, class_num: int = 10, width: int = 8, pretrained: bool | str = False) -> SearchNet:
    net = SearchNet(class_num, width)
    if isinstance(pretrained, str):
        net.set_state_dict({k: paddle.to_tensor(v) for k, v in load_state_dict_file(pretrained + ".pdparams").items()})
    return net


@hookimpl
def corolla_backbones():
    return {"SearchNet": build, "SearchNetWide": partial(build, width=16)}
"""


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_base(data, out: Path) -> dict:
    config = engine_support.tiny_config(data, out, epochs=1, batch=8, arch={"name": "SearchNet", "class_num": data.num_classes})
    config["Global"]["callbacks"] = [{"ConsoleLogger": None}, {"MetricsLog": None}]
    return config


def tiny_distillation(data, out: Path) -> dict:
    config = tiny_base(data, out)
    config["Arch"] = {"name": "DistillationModel", "class_num": data.num_classes, "freeze_params_list": [True, False],
                      "models": [{"Teacher": {"name": "SearchNet"}}, {"Student": {"name": "SearchNet", "width": 4}}],
                      "infer_model_name": "Student"}
    config["Loss"]["Train"] = [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}},
                               {"DistillationDMLLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}}]
    config["Metric"]["Train"] = [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 2]}}]
    return config


@pytest.fixture
def plugin_env(fake_dist, monkeypatch):
    """SearchNet, importable by the search's ``corolla train`` processes (a fake distribution on PYTHONPATH)."""
    fake_dist("corolla-search-test", {"search_net": SEARCH_NET})
    paths = [sys.path[0], os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    return dict(os.environ)


def search_command(search_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "corolla", "search", "-c", str(search_file), "--poll", "0.5", *extra]


def read_table(out: Path) -> list[dict]:
    with (out / "trials.csv").open() as stream:
        return list(csv.DictReader(stream))


def complete_trials(database: Path, study: str) -> list:
    if not database.is_file():
        return []
    try:
        # the search may be creating the tables right now: open the storage as the search does
        found = optuna.load_study(study_name=study, storage=open_storage(optuna, f"sqlite:///{database}"))
    except KeyError:  # not created yet
        return []
    return found.get_trials(states=[optuna.trial.TrialState.COMPLETE])


# --- reading search files --------------------------------------------------------


def test_labels_are_yaml_and_folders_are_safe():
    assert [label(v) for v in (0.01, 176, "ResNet50_vd", [0.0, 0.5], True)] == ["0.01", "176", "ResNet50_vd", "[0.0, 0.5]", "true"]
    assert yaml.safe_load(label([0.0, 0.2])) == [0.0, 0.2]
    assert slug("[0.0, 0.2, 1.0]") == "0.0_0.2_1.0"


@pytest.mark.skipif(not PULC_PERSON.is_file(), reason=f"PaddleClas 2.6's configs are not in {PADDLECLAS}")
def test_paddleclas_search_file_reads_with_its_repository_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # PaddleClas's paths start at its root: found from the search file's folders
    spec = read_search(PULC_PERSON)
    folder = PULC_PERSON.resolve().parent  # the search looks upwards from the real folder, links resolved
    assert spec.base_config == folder / "PPLCNet_x1_0_search.yaml"
    assert spec.distill_config == folder / "PPLCNet_x1_0_distillation.yaml"
    assert [s.name for s in spec.all_stages()] == ["lrs", "resolutions", "ra_probs", "re_probs", "lr_mult_list", "teacher", "final"]
    resolutions = spec.stages[1]
    assert resolutions.params[0].keys == ("DataLoader.Train.dataset.transform_ops.1.RandCropImage.size",
                                          "DataLoader.Train.dataset.transform_ops.3.TimmAutoAugment.img_size")
    assert [p.folder() for p in resolutions.points()] == ["176_0", "192_0", "224_0"]
    assert spec.gpus == (0, 1, 2, 3) and spec.teacher.rm_keys == ("Arch.lr_mult_list",) and spec.name == "search_person_cls"


def test_corolla_keys_joint_tpe_stage_pruner_and_metric(tmp_path):
    base = write_yaml(tmp_path / "base.yaml", {"Global": {}})
    spec = read_search(write_yaml(tmp_path / "s.yaml", {
        "base_config_file": "base.yaml", "output_dir": str(tmp_path / "out"), "metric": "top1", "pruner": "median",
        "search_dict": [
            {"search_key": "lr", "replace_config": ["Optimizer.lr.learning_rate"], "search_values": [0.1, 0.2], "pruner": "none"},
            {"search_key": "joint", "sampler": "tpe", "trials": 4, "params": {
                "lr": {"replace_config": ["Optimizer.lr.learning_rate"], "low": 1e-3, "high": 1e-1, "log": True},
                "size": {"replace_config": ["A.b", "A.c"], "search_values": [32, 48]}}},
            {"search_key": "grid2", "search_times": 2, "params": {
                "a": {"replace_config": ["X.a"], "search_values": [1, 2]}, "b": {"replace_config": ["X.b"], "search_values": [3]}}},
        ]}))
    assert spec.base_config == base and spec.metric == "top1"
    lr, joint, grid2 = spec.stages
    assert lr.pruner is None and joint.pruner == {"name": "median"} and joint.trials == 4
    assert joint.params[0].log and not joint.params[0].integer and joint.params[1].values == (32, 48)
    assert [p.folder() for p in grid2.points()] == ["1-3_0", "1-3_1", "2-3_0", "2-3_1"]
    assert grid2.values_of(("2", "3")) == {"X.a": 2, "X.b": 3}


@pytest.mark.parametrize("change, message", [
    ({"seach_dict": []}, r"unknown key\(s\) 'seach_dict'"),
    ({"search_dict": [{"search_key": "x", "replace_config": ["A.b"], "low": 0, "high": 1}]}, r"search_dict.0: a grid stage needs search_values"),
    ({"search_dict": [{"search_key": "x", "sampler": "tpe", "replace_config": ["A.b"], "search_values": [1]}]}, r"search_dict.0.trials"),
    ({"search_dict": [{"search_key": "teacher", "replace_config": ["A.b"], "search_values": [1]}]}, r"unique and not 'teacher'"),
    ({"pruner": "sha"}, r"pruner: expected one of asha, hyperband"),
    ({"teacher": {"search_values": ["ResNet50_vd"]}}, r"teacher needs distill_config_file"),
])
def test_search_file_errors_name_the_key(tmp_path, change, message):
    write_yaml(tmp_path / "base.yaml", {"Global": {}})
    raw = {"base_config_file": "base.yaml", "output_dir": "out",
           "search_dict": [{"search_key": "lr", "replace_config": ["Optimizer.lr.learning_rate"], "search_values": [0.1]}]}
    raw.update(change)
    with pytest.raises(ConfigError, match=message):
        read_search(write_yaml(tmp_path / "s.yaml", raw))


def test_a_missing_config_says_every_path_tried(tmp_path):
    search = write_yaml(tmp_path / "s.yaml", {"base_config_file": "ppcls/configs/x.yaml", "output_dir": "out",
                                              "search_dict": [{"search_key": "a", "replace_config": ["A.b"], "search_values": [1]}]})
    with pytest.raises(ConfigError, match=r"base_config_file: ppcls/configs/x.yaml not found; tried:\n") as error:
        read_search(search)
    assert str(tmp_path / "configs" / "x.yaml") in str(error.value) and "-o base_config_file=PATH" in str(error.value)


def test_search_help_says_that_c_is_a_search_file(capsys):
    from corolla.cli.main import main

    with pytest.raises(SystemExit):
        main(["search", "--help"])
    assert "search file (PaddleClas's search.yaml layout" in " ".join(capsys.readouterr().out.split())


def test_overrides_go_to_the_search_file_both_configs_or_one(tmp_path):
    overrides = split_overrides(["search_dict.0.search_values=[1]", "Global.epochs=1", "base:Arch.pretrained=False",
                                 "distill:Arch.models.1.Student.pretrained=False", "+Global.extra=1"])
    assert overrides.search == ("search_dict.0.search_values=[1]",)
    assert overrides.common == ("Global.epochs=1", "+Global.extra=1")
    assert overrides.base == ("Arch.pretrained=False",) and overrides.distill == ("Arch.models.1.Student.pretrained=False",)
    with pytest.raises(ConfigError, match=r"'Globl' is neither a key of the search file"):
        split_overrides(["Globl.epochs=1"])


def no_data(folder: Path) -> SimpleNamespace:
    """What tiny_base needs of a dataset, for configs that are only planned."""
    return SimpleNamespace(root=folder, train_list=folder / "t.txt", val_list=folder / "v.txt", num_classes=2,
                           class_names=("a", "b"), label_list=folder / "l.txt")


def test_trial_configs_map_keys_and_check_that_they_exist(plugin_env, tmp_path):
    data = no_data(tmp_path)
    write_yaml(tmp_path / "base.yaml", tiny_base(data, tmp_path))
    write_yaml(tmp_path / "distill.yaml", tiny_distillation(data, tmp_path))
    raw = {"base_config_file": "base.yaml", "distill_config_file": "distill.yaml", "output_dir": "out",
           "final_replace": {"Arch.width": "Arch.models.1.Student.width"},
           "search_dict": [{"search_key": "width", "replace_config": ["Arch.width"], "search_values": [4, 8]}]}
    spec = read_search(write_yaml(tmp_path / "s.yaml", raw), split_overrides(["Global.epochs=3"]))
    configs = TrialConfigs(spec, split_overrides(["Global.epochs=3"]))
    configs.check_keys(spec.all_stages(), [])
    final = configs.build(spec.all_stages()[-1], {"Arch.models.0.Teacher.pretrained": "t/best_model"}, {"Arch.width": 8}, tmp_path / "f")
    assert get_path(final, "Arch.models.1.Student.width") == 8 and get_path(final, "Global.epochs") == 3
    assert final["Global"]["output_dir"] == str(tmp_path / "f") and map_key("Arch.width.x", spec.final_replace) == "Arch.models.1.Student.width.x"
    raw["search_dict"][0]["replace_config"] = ["DataLoader.Train.dataset.transform_ops.1.RandCropImage.size"]
    spec = read_search(write_yaml(tmp_path / "s.yaml", raw))
    with pytest.raises(ConfigError, match=r"has no DataLoader.Train.dataset.transform_ops.1.RandCropImage"):
        TrialConfigs(spec, split_overrides([])).check_keys(spec.stages, [])


def test_repeat_r_of_a_trial_trains_with_the_configs_seed_plus_r(plugin_env, tmp_path):
    data = no_data(tmp_path)
    write_yaml(tmp_path / "base.yaml", tiny_base(data, tmp_path))  # Global.seed 7
    write_yaml(tmp_path / "distill.yaml", tiny_distillation(data, tmp_path))
    raw = {"base_config_file": "base.yaml", "distill_config_file": "distill.yaml", "output_dir": "out",
           "teacher": {"search_values": ["SearchNet"], "search_times": 2},
           "search_dict": [{"search_key": "width", "replace_config": ["Arch.width"], "search_values": [4, 8]}]}
    spec = read_search(write_yaml(tmp_path / "s.yaml", raw))
    configs = TrialConfigs(spec, split_overrides([]))
    grid, teacher, final = spec.all_stages()
    for stage, settings in ((grid, {"Arch.width": 4}), (teacher, {"Arch.name": "SearchNet"})):
        first, second, third = (configs.build(stage, settings, {}, tmp_path / "t", repeat) for repeat in range(3))
        assert [c["Global"]["seed"] for c in (first, second, third)] == [7, 8, 9]
        assert {**second, "Global": {**second["Global"], "seed": 7}} == first  # nothing else differs
    assert configs.build(final, {}, {}, tmp_path / "f")["Global"]["seed"] == 7
    unseeded = TrialConfigs(spec, split_overrides(["base:Global.seed=null"]))
    assert unseeded.build(grid, {"Arch.width": 4}, {}, tmp_path / "t", 1)["Global"]["seed"] is None  # each run draws one


def test_a_search_gives_each_repeat_its_seed_and_the_best_config_the_users(plugin_env, tmp_path, monkeypatch):
    def fake_trial(trial, slot, **_):  # no training: the config written, the seed as score
        write_config(trial.config, trial.folder / "config.yaml")
        return Outcome("complete", float(trial.config["Global"]["seed"]), None, 0.0, trial.folder / "run")

    monkeypatch.setattr("corolla.search.runner.run_trial", fake_trial)
    write_yaml(tmp_path / "base.yaml", tiny_base(no_data(tmp_path), tmp_path))  # Global.seed 7
    out = tmp_path / "out"
    spec = read_search(write_yaml(tmp_path / "s.yaml", {
        "base_config_file": "base.yaml", "output_dir": str(out), "search_times": 2,
        "search_dict": [{"search_key": "width", "replace_config": ["Arch.width"], "search_values": [4, 8]}]}))
    run_search(spec, poll=0.1)
    seeds = {f.name: yaml.safe_load((f / "config.yaml").read_text())["Global"]["seed"] for f in (out / "width").iterdir()}
    assert seeds == {"4_0": 7, "4_1": 8, "8_0": 7, "8_1": 8}
    assert yaml.safe_load((out / "best_config.yaml").read_text())["Global"]["seed"] == 7


@pytest.mark.parametrize("override, message", [
    ("Global.epoch=2", r"base.yaml: override of Global.epoch: Global has no key 'epoch' .*Did you mean 'epochs'\?"),
    ("search_dict.0.replace_config=[Optimizer.lr.learning_rat]",
     r"base.yaml: search_dict.0.replace_config \(stage 'lrs'\) of .*s.yaml sets Optimizer.lr.learning_rat, but Optimizer.lr has no key "
     r"'learning_rat' .*Did you mean 'learning_rate'\?"),
    ("search_dict.0={search_key: crop, sampler: tpe, trials: 2, params: {size: {replace_config: "
     "[DataLoader.Train.dataset.transform_ops.1.ResizeImage.sise], search_values: [24, 32]}}}",
     r"base.yaml: search_dict.0.params.size.replace_config \(stage 'crop'\) of .*s.yaml sets DataLoader.Train.dataset.transform_ops.1.ResizeImage.sise, "
     r"but DataLoader.Train.dataset.transform_ops.1.ResizeImage has no key 'sise' .*Did you mean 'size'\?"),
    ("Optimizer.lr.learning_rate=-0.1", r"base.yaml: Optimizer.lr.learning_rate: expected a number > 0, found -0.1"),
    ("search_dict.0.search_values=[0.1, -0.2]", r"base.yaml: search_dict.0.replace_config \(stage 'lrs'\) of .*s.yaml: "
     r"the value -0.2: Optimizer.lr.learning_rate: expected a number > 0, found -0.2"),
    ("search_dict.0={search_key: lrs, sampler: tpe, trials: 2, params: {lr: {replace_config: [Optimizer.lr.learning_rate], "
     "low: -0.1, high: 0.5}}}", r"search_dict.0.params.lr.replace_config \(stage 'lrs'\) of .*s.yaml: the value -0.1: "
     r"Optimizer.lr.learning_rate: expected a number > 0"),
    ("search_dict.0={search_key: net, replace_config: [Arch.name], search_values: [SearchNet, SearchNett]}",
     r"stage 'net'\) of .*s.yaml: the value SearchNett: .*SearchNett"),
    ("Metric.Eval=[{HammingDistance: null}]", r"base.yaml: the trials would be scored by HammingDistance, which is better "
     r"lower, and the search keeps the highest score: set the search file's metric:"),
])
def test_a_search_checks_overrides_stage_keys_and_values_as_train_does_before_any_trial(plugin_env, tmp_path, override, message):
    out = tmp_path / "out"
    write_yaml(tmp_path / "base.yaml", tiny_base(no_data(tmp_path), tmp_path))
    search = write_yaml(tmp_path / "s.yaml", {
        "base_config_file": "base.yaml", "output_dir": str(out),
        "search_dict": [{"search_key": "lrs", "replace_config": ["Optimizer.lr.learning_rate"], "search_values": [0.1, 0.2]}]})
    overrides = split_overrides([override])
    with pytest.raises(ConfigError, match=message):
        run_search(read_search(search, overrides), overrides)
    assert not out.exists()  # no trial folder, not even the study's search.db: the check comes first


def test_the_plugin_flags_of_search_reach_its_check_of_the_configs(plugin_env, tmp_path, capsys):
    from corolla.cli.main import main

    out = tmp_path / "out"
    write_yaml(tmp_path / "base.yaml", tiny_base(no_data(tmp_path), tmp_path))
    search = write_yaml(tmp_path / "s.yaml", {
        "base_config_file": "base.yaml", "output_dir": str(out),
        "search_dict": [{"search_key": "lrs", "replace_config": ["Optimizer.lr.learning_rate"], "search_values": [0.1]}]})
    assert main(["search", "-c", str(search), "-p", "no:search_net"]) == 2  # the plugin that has SearchNet, disabled
    assert "SearchNet" in capsys.readouterr().err
    assert not out.exists()  # no trial folder, not even the study's search.db: the check comes first


@pytest.mark.parametrize("name", ["quick_search.yaml", "person_exists.yaml"])
def test_shipped_search_files_read_and_their_configs_plan(name):
    import corolla
    from corolla.config.planner import read_plan

    spec = read_search(shipped_configs() / "search" / name)
    configs = TrialConfigs(spec, split_overrides([]))
    configs.check_keys(spec.all_stages(), ["Arch.models.0.Teacher.name", "Arch.models.0.Teacher.pretrained"])
    registry = corolla.load_registry()
    for stage in spec.all_stages():
        settings = stage.values_of([p.labels()[-1] if p.values else label(p.high) for p in stage.params])
        read_plan(configs.build(stage, settings, {}, Path("out")), registry)


def test_jobs_split_threads_on_cpu_and_gpus_on_gpu(monkeypatch):
    from corolla.search.trial import Slot, slots

    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert slots(1, (0, 1), "cpu") == [Slot()] and slots(3, (), "cpu") == [Slot({"OMP_NUM_THREADS": "2"})] * 3
    assert slots(1, (0, 1, 2, 3), "gpu") == [Slot(gpus=(0, 1, 2, 3))]  # one trial on every GPU (launch)
    assert slots(2, (0, 1, 2, 3), "gpu") == [Slot(gpus=(0, 1)), Slot(gpus=(2, 3))]
    assert slots(2, (4, 5), "gpu") == [Slot({"CUDA_VISIBLE_DEVICES": "4"}), Slot({"CUDA_VISIBLE_DEVICES": "5"})]
    with pytest.raises(ConfigError, match=r"--jobs 4 on GPU .* list at least 4 in the search file's gpus \(found \[0, 1\]\)"):
        slots(4, (0, 1), "gpu")


def test_a_trials_score_and_error_come_from_its_files(tmp_path):
    from corolla.search.trial import error_of, read_score

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"event": "eval", "epoch": 1, "top1": 0.5}\n{"event": "epoch", "epoch": 1, "top1": 0.9}\n'
                       '{"event": "eval", "epoch": 2, "top1": 0.75, "top5": 1.0}\n{"event": "eval", "ep')  # cut by a kill
    assert read_score(metrics, "top1") == 0.75
    with pytest.raises(CorollaError, match=r"no evaluation in .* has 'tpr' \(2 evaluations; their values: top1, top5\)"):
        read_score(metrics, "tpr")
    log = tmp_path / "train.log"
    log.write_text("[Train] ...\ncorolla train: error: Arch.name: unknown backbone 'ResNet5'\n")
    assert error_of(log, 2) == "Arch.name: unknown backbone 'ResNet5'" and error_of(log, -9) == "killed by SIGKILL (out of memory?)"
    log.write_text("Traceback (most recent call last):\n  File x\nMemoryError: cannot allocate\n")
    assert error_of(log, 1) == "MemoryError: cannot allocate"


def test_the_search_plot_is_a_png_and_leaves_the_processs_matplotlib_backend_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    stage = Stage("lrs", (Param("lrs", ("Optimizer.lr.learning_rate",), (0.01, 0.1)),))
    rows = [Row("lrs", number, value, 0, score, 3.0, state, "", "")
            for number, value, score, state in ((0, "0.01", 0.5, "complete"), (1, "0.1", 0.7, "pruned"))]
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        plot(rows, [stage], tmp_path / "search.png")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    assert (tmp_path / "search.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search.png"]  # its temporary file is gone


def test_without_optuna_the_search_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(CorollaError, match=r"pip install 'corolla\[search\]'"):
        import_optuna()


# --- claiming trials in a shared study ---------------------------------------------


def test_workers_never_claim_the_same_trial_and_take_over_a_dead_workers(tmp_path):
    spec = read_search(write_yaml(tmp_path / "s.yaml", {
        "base_config_file": str(write_yaml(tmp_path / "b.yaml", {"Global": {}})), "output_dir": "out", "search_times": 2,
        "search_dict": [{"search_key": "lr", "replace_config": ["Optimizer.lr.learning_rate"], "search_values": [0.1, 0.2]}]}))
    stage = spec.stages[0]
    storage = open_storage(optuna, f"sqlite:///{tmp_path / 's.db'}")
    one, two = (StageStudy(optuna, storage, "s", stage, {}, seed=0, worker=Worker(pid=os.getpid(), token=t)) for t in "ab")
    claims = [one.claim(), two.claim(), two.claim()]
    assert len({(c.labels, c.repeat) for c in claims}) == 3
    one.finish(claims[0], "complete", {"score": 0.5})
    two.finish(claims[1], "failed", {"error": "boom"})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage.set_trial_user_attr(claims[2].trial_id, "worker", f"{Worker().host}:{dead.pid}:gone")
    last, again = one.claim(), one.claim()  # the dead worker's point runs again, and the fourth point
    assert {(c.labels, c.repeat) for c in (last, again)} == {(claims[2].labels, claims[2].repeat), (("0.2",), 1)}
    assert one.claim() is None
    trials = one.trials()
    assert sorted(status(t) for t in trials) == ["complete", "failed", "interrupted", "running", "running"]
    for claim in (last, again):
        one.finish(claim, "complete", {"score": 0.7})
    assert one.finished(one.trials()) and two.claim() is None


def test_search_trial_callback_reports_and_prunes(tmp_path, monkeypatch):
    from corolla.plugins.callbacks.search_trial import SearchTrial

    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = optuna.create_study(study_name="p", storage=url, direction="maximize")
    for value in (0.8, 0.9):
        done = study.ask()
        done.report(value, 1)
        study.tell(done, value)
    pending = study.ask()
    monkeypatch.setenv("COROLLA_SEARCH_STORAGE", url)
    callback = SearchTrial("p", pending._trial_id, metric="top1",
                           pruner={"class": "MedianPruner", "n_startup_trials": 1, "n_warmup_steps": 0})
    run = SimpleNamespace(is_main=True, world_size=1, best_metric_name="top1", stop_training=False)
    callback.corolla_train_start(run)
    callback.corolla_eval_end(run, 1, {"top1": 0.1, "loss": 2.0})
    trial = optuna.load_study(study_name="p", storage=url).trials[2]
    assert run.stop_training and trial.intermediate_values == {1: 0.1}
    assert trial.user_attrs == {"metric": "top1", "pruned_at": 1}


# --- whole searches ------------------------------------------------------------------


def test_two_stages_teacher_and_final_distillation_resume_after_a_kill(plugin_env, tmp_path):
    data = make_list_dataset(tmp_path / "data", num_classes=3, images_per_class=6, image_size=32)
    out = tmp_path / "out"
    write_yaml(tmp_path / "base.yaml", tiny_base(data, tmp_path / "unused"))
    write_yaml(tmp_path / "distill.yaml", tiny_distillation(data, tmp_path / "unused"))
    search = write_yaml(tmp_path / "search.yaml", {
        "base_config_file": "base.yaml", "distill_config_file": "distill.yaml", "output_dir": str(out), "search_times": 1,
        "search_dict": [
            {"search_key": "lrs", "replace_config": ["Optimizer.lr.learning_rate"], "search_values": [0.05, 0.2]},
            {"search_key": "widths", "replace_config": ["Arch.width"], "search_values": [4, 8]},
        ],
        "teacher": {"rm_keys": ["Arch.width"], "search_values": ["SearchNet", "SearchNetWide"]},
        "final_replace": {"Arch.width": "Arch.models.1.Student.width"},
    })
    database = out / "search.db"
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(search_command(search), cwd=tmp_path, env=plugin_env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        deadline = time.monotonic() + 240
        while not complete_trials(database, "out.lrs") and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        os.killpg(first.pid, signal.SIGKILL)  # the search and the trial it runs
        first.wait()
    (done_first,) = complete_trials(database, "out.lrs")
    first_metrics = Path(done_first.user_attrs["run_dir"]) / "metrics.jsonl"
    stamp = first_metrics.stat().st_mtime_ns

    again = subprocess.run(search_command(search), cwd=tmp_path, env=plugin_env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, (tmp_path / "first.log").read_text()[-3000:] + again.stdout[-4000:] + again.stderr[-3000:]
    assert "1 of 2 trials already finished" in again.stdout and first_metrics.stat().st_mtime_ns == stamp

    rows = read_table(out)
    complete = [(r["stage"], r["values"]) for r in rows if r["state"] == "complete"]
    assert sorted(complete) == sorted([("lrs", "0.05"), ("lrs", "0.2"), ("widths", "4"), ("widths", "8"),
                                       ("teacher", "SearchNet"), ("teacher", "SearchNetWide"), ("final", "-")])
    assert all(r["state"] in ("complete", "interrupted") for r in rows)  # the killed trial ran again, nothing else

    def best(stage: str) -> str:
        scored = [r for r in rows if r["stage"] == stage and r["state"] == "complete"]
        return max(scored, key=lambda r: float(r["score"]))["values"]  # first of equal scores, as the search ranks

    best_config = yaml.safe_load((out / "best_config.yaml").read_text())
    assert label(best_config["Optimizer"]["lr"]["learning_rate"]) == best("lrs")
    assert label(best_config["Arch"]["width"]) == best("widths") and best_config["Global"]["output_dir"] == str(out / "best")
    widths_trial = yaml.safe_load((out / "widths" / "4_0" / "config.yaml").read_text())
    assert label(widths_trial["Optimizer"]["lr"]["learning_rate"]) == best("lrs")  # stage 2 ran with stage 1's best
    teacher_trial = yaml.safe_load((out / "teacher" / "SearchNetWide_0" / "config.yaml").read_text())
    assert "width" not in teacher_trial["Arch"]  # rm_keys: the candidate's own width

    final = yaml.safe_load((out / "final_config.yaml").read_text())
    teacher, student = (next(iter(m.values())) for m in final["Arch"]["models"])
    chosen = best("teacher")
    assert teacher["name"] == chosen and teacher["pretrained"] == str(out / "teacher" / f"{chosen}_0" / chosen / "best_model")
    assert Path(teacher["pretrained"] + ".pdparams").is_file() and label(student["width"]) == best("widths")
    assert (out / "final" / "DistillationModel" / "metrics.jsonl").is_file() and (out / "search.png").stat().st_size > 0


@pytest.mark.skipif(not PULC_PERSON.is_file(), reason=f"PaddleClas 2.6's configs are not in {PADDLECLAS}")
def test_a_paddleclas_pulc_search_file_runs_unchanged_but_for_paths_and_sizes(plugin_env, tmp_path):
    # 12 training images in full batches of 4: PP-LCNet's BatchNorm on a last batch of 2 can make the evaluation NaN
    data = make_list_dataset(tmp_path / "data", num_classes=2, images_per_class=8, image_size=32)
    out = tmp_path / "out"
    sizes = ["output_dir=" + str(out), "search_dict.0.search_values=[0.01]", "search_dict.1.search_values=[32]",
             "search_dict.2.search_values=[0.5]", "search_dict.3.search_values=[0.1]",
             "search_dict.4.search_values=[[0.0, 0.4, 0.4, 0.8, 0.8, 1.0]]", "teacher.search_values=[ResNet18_vd]"]
    paths = ["Global.device=cpu", "Global.epochs=1", "Global.start_eval_epoch=0", "Global.image_shape=[3,32,32]",
             *(f"DataLoader.{mode}.dataset.image_root={data.root}" for mode in ("Train", "Eval")),
             f"DataLoader.Train.dataset.cls_label_path={data.train_list}", f"DataLoader.Eval.dataset.cls_label_path={data.val_list}",
             "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.resize_short=36",
             "DataLoader.Eval.dataset.transform_ops.2.CropImage.size=32",
             "DataLoader.Train.sampler.batch_size=4", "DataLoader.Eval.sampler.batch_size=4",
             "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0",
             "base:Arch.pretrained=False", "distill:Arch.models.1.Student.pretrained=False"]  # no downloads
    command = search_command(PULC_PERSON, "--jobs", "2", *(arg for o in sizes + paths for arg in ("-o", o)))
    done = subprocess.run(command, cwd=tmp_path, env=plugin_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    rows = read_table(out)
    assert [(r["stage"], r["state"]) for r in rows] == [(s, "complete") for s in (
        "lrs", "resolutions", "ra_probs", "re_probs", "lr_mult_list", "teacher", "final")]
    final = yaml.safe_load((out / "final_config.yaml").read_text())
    teacher, student = (next(iter(m.values())) for m in final["Arch"]["models"])
    assert student["lr_mult_list"] == [0.0, 0.4, 0.4, 0.8, 0.8, 1.0] and "lr_mult_list" not in final["Arch"]  # final_replace
    assert teacher["name"] == "ResNet18_vd" and teacher["pretrained"].endswith("teacher/ResNet18_vd_0/ResNet18_vd/best_model")
    ops = final["DataLoader"]["Train"]["dataset"]["transform_ops"]
    assert ops[1]["RandCropImage"]["size"] == 32 and ops[3]["TimmAutoAugment"]["prob"] == 0.5
    teacher_trial = yaml.safe_load((out / "teacher" / "ResNet18_vd_0" / "config.yaml").read_text())
    assert "lr_mult_list" not in teacher_trial["Arch"]  # rm_keys
    (trial,) = complete_trials(out / "search.db", "out.lrs")
    assert trial.user_attrs["metric"] == "tpr_at_fpr"  # the first Metric.Eval value, PaddleClas's "best metric"


def test_two_processes_share_one_study_and_run_no_trial_twice(plugin_env, tmp_path):
    data = make_list_dataset(tmp_path / "data", num_classes=3, images_per_class=6, image_size=32)
    out = tmp_path / "out"
    write_yaml(tmp_path / "base.yaml", tiny_base(data, tmp_path / "unused"))
    search = write_yaml(tmp_path / "search.yaml", {
        "base_config_file": "base.yaml", "output_dir": str(out), "study_name": "shared",
        "search_dict": [{"search_key": "lrs", "replace_config": ["Optimizer.lr.learning_rate"],
                         "search_values": [0.02, 0.05, 0.2]}]})
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    workers = [subprocess.Popen(search_command(search, "--storage", url), cwd=tmp_path, env=plugin_env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    started = [line.split("] ", 1)[1] for o in outputs for line in o.splitlines() if " started in " in line]
    assert len(started) == 3 == len(set(started))
    trials = optuna.load_study(study_name="shared.lrs", storage=url).get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["lrs"] for t in complete) == ["0.02", "0.05", "0.2"]
    for folder in (out / "lrs").iterdir():  # each trial's log has one 'corolla train' command: it ran once
        assert (folder / "train.log").read_text().count(" -m corolla train ") == 1, folder
