"""Distillation through the engine, with no special case: a tiny teacher and student trained on
labeled plus unlabeled images, the best student saved on its own, export of the student only,
and a loss from a third-party distribution named in a config."""
from __future__ import annotations

import copy
import json
import re
import os
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

import corolla
import engine_support
from corolla.engine.files import write_checkpoint
from corolla.engine.evaluate import evaluate_config
from corolla.engine.export import export
from corolla.engine.train import train
from corolla.config.planner import read_plan
from corolla.plugin.errors import WeightsError
from corolla.testing.datasets import make_list_dataset
from corolla.engine.safe_pickle import load_state_dict_file

SCALED_LOSS = """
import paddle.nn.functional as F
from corolla import hookimpl

class HalfCrossEntropy:
    '''Half the cross entropy of the labeled rows of the predicting model.'''

    def __init__(self, scale=0.5):
        self.scale = scale

    def __call__(self, outputs, labels):
        logits = outputs[outputs.primary] if isinstance(outputs, dict) else outputs
        keep = labels >= 0
        loss = F.cross_entropy(logits[keep], labels[keep].reshape([-1, 1]))
        return {"half_ce": loss * self.scale}

@hookimpl
def corolla_losses():
    return {"HalfCrossEntropy": HalfCrossEntropy}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=8, image_size=32, unlabeled=6, seed=5)


def registry_with(*extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return corolla.load_registry(extra_plugins=[("engine_support", engine_support), *extra])


def distillation_config(data, out, **loss):
    config = engine_support.tiny_config(data, out, epochs=1, arch={
        "name": "DistillationModel",
        "class_num": data.num_classes,
        "freeze_params_list": [True, False],
        "models": [{"Teacher": {"name": "TinyNet", "width": 16}}, {"Student": {"name": "TinyNet", "width": 4}}],
        "infer_model_name": "Student",
    })
    config["DataLoader"]["Train"]["dataset"]["cls_label_path"] = str(data.train_extra_list)
    config["Loss"]["Train"] = loss.get("train", [
        {"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}},
        {"DistillationDMLLoss": {"weight": 2.0, "model_name_pairs": [["Student", "Teacher"]]}},
    ])
    config["Metric"]["Train"] = [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 2]}}]
    return config


@pytest.fixture(scope="module")
def distilled(data, tmp_path_factory):
    """One epoch of a tiny teacher (from a given checkpoint) distilled into a tiny student."""
    out = tmp_path_factory.mktemp("distill")
    registry = registry_with()
    config = distillation_config(data, out)
    arch = {k: v for k, v in config["Arch"].items() if k != "name"}
    start = registry.build("backbone", "DistillationModel", copy.deepcopy(arch), key_path="Arch")
    initial = {k: v.numpy() for k, v in start.state_dict().items()}
    write_checkpoint(out / "start", {".pdparams": initial})
    config["Global"]["pretrained_model"] = str(out / "start")
    run = train(read_plan(copy.deepcopy(config), registry), distributed=False)
    return config, run, initial, registry


def test_unlabeled_images_train_the_student_and_the_teacher_stays_as_given(distilled, data):
    config, run, initial, _ = distilled
    assert run.steps_per_epoch == -(-(data.num_train + data.num_extra) // 8)
    records = [json.loads(line) for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("event") == "step"]
    assert steps and all({"loss_gt_ce_Student", "loss_dml_Student_Teacher", "loss"} <= set(r) for r in steps)
    latest = load_state_dict_file(run.output_dir / "latest.pdparams")
    assert set(latest) == set(initial)
    for key, value in initial.items():
        if key.startswith("Teacher."):  # weights and BatchNorm statistics: frozen, eval mode
            np.testing.assert_array_equal(latest[key], value, err_msg=key)
    assert not np.array_equal(latest["Student.fc.weight"], initial["Student.fc.weight"])
    assert not np.array_equal(latest["Student.features.1._mean"], initial["Student.features.1._mean"])


def test_a_frozen_teacher_with_no_weights_is_warned_about_at_train_start(data, tmp_path):
    config = distillation_config(data, tmp_path)
    config["Global"]["callbacks"] = [{"StopAfterSteps": {"steps": 1}}]
    with pytest.warns(UserWarning, match=r"Arch.models.0.Teacher: frozen \(freeze_params_list\) with no pretrained weights, "
                                         r"and Global.pretrained_model is not set"):
        train(read_plan(config, registry_with()), distributed=False)


def test_the_best_student_is_saved_on_its_own(distilled, data, tmp_path):
    _, run, _, registry = distilled
    best = load_state_dict_file(run.output_dir / "best_model.pdparams")
    student = load_state_dict_file(run.output_dir / "best_model_student.pdparams")
    assert set(student) == {k.removeprefix("Student.") for k in best if k.startswith("Student.")}
    for key, value in student.items():
        np.testing.assert_array_equal(value, best[f"Student.{key}"])
    # it is a plain TinyNet checkpoint: a single-backbone config evaluates it
    plain = engine_support.tiny_config(data, tmp_path, epochs=1, arch={"name": "TinyNet", "class_num": 3, "width": 4})
    plain["Global"]["pretrained_model"] = str(run.output_dir / "best_model_student")
    alone = evaluate_config(read_plan(plain, registry))
    both = _evaluate_distillation(distilled)
    assert alone["top1"] == pytest.approx(both["top1"]) and alone["loss"] == pytest.approx(both["loss"], rel=1e-5)
    # each file given to the other config: the error says which file fits
    whole = copy.deepcopy(plain)
    whole["Global"]["pretrained_model"] = str(run.output_dir / "best_model")
    with pytest.raises(WeightsError, match=r"its Student.\* entries are this model: .*best_model_student; load that file"):
        evaluate_config(read_plan(whole, registry))
    config = copy.deepcopy(distilled[0])
    config["Global"]["pretrained_model"] = str(run.output_dir / "best_model_student")
    with pytest.raises(WeightsError, match=r"holds the weights of the model's Student alone: .*Arch.models.<i>.Student.pretrained"):
        evaluate_config(read_plan(config, registry))


def test_export_writes_only_the_student(distilled, tmp_path):
    config, run, _, registry = distilled
    config = copy.deepcopy(config)
    config["Global"]["pretrained_model"] = str(run.output_dir / "best_model")
    config["Global"]["save_inference_dir"] = str(tmp_path / "inference")
    folder = export(read_plan(config, registry))
    exported = paddle.jit.load(str(folder / "inference"))
    student = registry.build("backbone", "TinyNet", {"class_num": 3, "width": 4})
    student.set_state_dict({k: paddle.to_tensor(v) for k, v in load_state_dict_file(run.output_dir / "best_model_student.pdparams").items()})
    student.eval()
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype("float32"))
    np.testing.assert_allclose(exported(x).numpy(), paddle.nn.functional.softmax(student(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert {p.shape[0] for p in exported.parameters() if len(p.shape) == 4} <= {4, 8}  # widths of the student, not 16/32


def test_a_loss_from_a_third_party_distribution_trains(data, tmp_path, fake_dist):
    fake_dist("half-ce", {"half_ce": SCALED_LOSS})
    config = distillation_config(data, tmp_path, train=[
        {"HalfCrossEntropy": {"weight": 2.0, "scale": 0.25}},
        {"DistillationKLDivLoss": {"model_name_pairs": [["Student", "Teacher"]], "temperature": 2}},
    ])
    run = train(read_plan(config, registry_with()), distributed=False)
    records = [json.loads(line) for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("event") == "step"]
    assert len(steps) == run.steps_per_epoch and all("half_ce" in r and "loss_kl_Student_Teacher" in r for r in steps)
    manifest = json.loads((run.output_dir / "manifest.json").read_text())
    assert "half-ce" in json.dumps(manifest)


def _evaluate_distillation(distilled):
    config, run, _, registry = distilled
    config = copy.deepcopy(config)
    config["Global"]["pretrained_model"] = str(run.output_dir / "best_model")
    return evaluate_config(read_plan(config, registry))


def test_the_distillation_experiment_runs_its_three_trainings(tmp_path, capsys):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "distillation_experiment.py"
    main = runpy.run_path(str(script))["main"]
    results = main(["--workdir", str(tmp_path), "--classes", "3", "--labeled", "4", "--val", "2", "--unlabeled", "6",
                    "--epochs", "1", "--teacher", "PPLCNet_x0_25", "--student", "PPLCNet_x0_25", "--seeds", "0,1"])
    assert len(results) == 3 and all(0.0 <= top1 <= 1.0 for top1 in results.values())
    table = capsys.readouterr().out
    assert "student PPLCNet_x0_25 distilled (DML)" in table and "labeled + unlabeled" in table
    assert "per seed (0,1)" in table and table.count(": top-1 ") == 6
    assert re.search(r"wall \d+ s; peak memory \d+ MiB; Paddle \d", table)
    for seed in (0, 1):
        assert (tmp_path / f"seed{seed}" / "distilled" / "DistillationModel" / "latest.pdparams").is_file()


def test_distillation_under_paddles_launcher_with_two_processes(fake_dist, tmp_path, data):
    fake_dist("corolla-engine-test", {"engine_support": Path(engine_support.__file__).read_text()})
    config = distillation_config(data, tmp_path / "out")
    for item in config["Arch"]["models"]:
        next(iter(item.values()))["batch_norm"] = False  # BatchNorm statistics are per process on CPU
    config["DataLoader"]["Train"]["dataset"]["transform_ops"] = config["DataLoader"]["Eval"]["dataset"]["transform_ops"]
    config["DataLoader"]["Train"]["sampler"]["batch_size"] = 4
    config["Global"]["callbacks"] = [{"MetricsLog": None}, {"SaveRankWeights": {"folder": str(tmp_path)}}]
    config_file = tmp_path / "distill.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([sys.path[0], os.environ.get("PYTHONPATH", "")])}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(tmp_path / "logs"),
         str(Path(sys.executable).with_name("corolla")), "train", "-c", str(config_file)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    logs = "".join((tmp_path / "logs" / f"workerlog.{rank}").read_text()[-3000:] for rank in (0, 1))
    assert done.returncode == 0, done.stdout[-3000:] + logs
    rank0, rank1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    assert rank0.files and all(name.startswith("Student.") for name in rank0.files)  # the frozen teacher has no trainable parameter
    for name in rank0.files:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
    assert (tmp_path / "out" / "DistillationModel" / "best_model_student.pdparams").is_file()
