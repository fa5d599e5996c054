"""``Global.to_static``: training steps compiled with ``paddle.jit.to_static`` train as the eager
engine does (plain, distillation and return_stages models), resume bitwise, and run data-parallel."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

import corolla
import engine_support
from corolla.config.planner import read_plan
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.engine.loss import CombinedLoss
from corolla.engine.train import train
from corolla.engine.train_step import TrainStep
from corolla.plugin.errors import ConfigError
from corolla.plugins.losses.celoss import CELoss
from corolla.testing.datasets import make_list_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=8, image_size=36,
                             unlabeled=4, seed=11)


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


def run(config: dict, registry, out: Path, *, to_static: bool):
    config = copy.deepcopy(config)
    config["Global"].update(output_dir=str(out), to_static=to_static, eval_during_train=False)
    return train(read_plan(config, registry), distributed=False)


def step_losses(run_, event: str = "step") -> list[dict]:
    records = [json.loads(line) for line in (run_.output_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["event"] == event]


def assert_same_training(config: dict, registry, tmp_path: Path, *, rtol: float = 1e-5) -> None:
    eager = run(config, registry, tmp_path / "eager", to_static=False)
    static = run(config, registry, tmp_path / "static", to_static=True)
    a, b = step_losses(eager), step_losses(static)
    assert len(a) == len(b) == eager.global_step > 0
    # the epochs' averages too: a compiled loss also says which terms are over labeled rows only
    for x, y in zip(a + step_losses(eager, "epoch"), b + step_losses(static, "epoch")):
        assert {k for k in x if k.startswith("loss")} == {k for k in y if k.startswith("loss")}
        for key in x:
            if key.startswith(("loss", "top")):
                assert y[key] == pytest.approx(x[key], rel=rtol, abs=1e-6), (key, x.get("step", "epoch"))
    wa = load_state_dict_file(eager.output_dir / "latest.pdparams")
    wb = load_state_dict_file(static.output_dir / "latest.pdparams")
    assert sorted(wa) == sorted(wb)
    for name in wa:
        np.testing.assert_allclose(wb[name], wa[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_compiled_steps_train_as_eager_steps(data, registry, tmp_path):
    arch = {"name": "TinyNet", "class_num": 3, "dropout": 0.3}
    config = engine_support.tiny_config(data, tmp_path, epochs=2, arch=arch)
    assert_same_training(config, registry, tmp_path)


def test_a_distillation_model_compiles_and_metrics_read_its_student(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=1, arch={
        "name": "DistillationModel", "class_num": 3, "freeze_params_list": [True, False],
        "models": [{"Teacher": {"name": "TinyNet", "width": 8}}, {"Student": {"name": "TinyNet", "width": 4}}],
        "infer_model_name": "Student"})
    config["DataLoader"]["Train"]["dataset"]["cls_label_path"] = str(data.train_extra_list)  # unlabeled rows too
    config["Loss"]["Train"] = [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}},
                               {"DistillationDMLLoss": {"weight": 2.0, "model_name_pairs": [["Student", "Teacher"]]}}]
    config["Metric"]["Train"] = [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 2]}}]
    assert_same_training(config, registry, tmp_path)


def test_a_backbone_returning_its_stages_compiles(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=1, size=32,
                                        arch={"name": "PPLCNet_x0_25", "class_num": 3, "return_stages": True})
    assert_same_training(config, registry, tmp_path, rtol=1e-4)


def test_only_a_new_input_shape_compiles_and_its_time_is_counted_apart(registry):
    paddle.seed(3)
    step = TrainStep(engine_support.TinyNet(class_num=3), CombinedLoss([("Loss.Train.0.CELoss", 1.0, CELoss())]), to_static=True, distributed=False)
    eager = TrainStep(engine_support.TinyNet(class_num=3), CombinedLoss([("Loss.Train.0.CELoss", 1.0, CELoss())]), to_static=False, distributed=False)

    def batch(size: int) -> tuple[paddle.Tensor, paddle.Tensor]:
        return paddle.rand([size, 3, 16, 16]), paddle.to_tensor(np.arange(size) % 3, dtype="int64")

    step(*batch(4))
    first = step.compile_s
    step(*batch(4))
    assert first > 0 and step.compile_s == first  # the same shape runs the graph traced for it
    step(*batch(2))  # the last, smaller batch of an epoch
    assert step.compile_s > first and len(step._compiled) == 2
    eager(*batch(4)), eager(*batch(2))
    assert eager.compile_s == 0


class _PairNet(paddle.nn.Layer):
    def forward(self, images):
        return images.mean(axis=[2, 3]), images.sum()


@pytest.mark.parametrize("to_static", [False, True])
def test_logits_of_another_shape_than_class_num_are_named_before_the_loss_runs(to_static):
    images, labels = paddle.rand([4, 3, 16, 16]), paddle.to_tensor([0, 1, 2, 0], dtype="int64")
    loss = CombinedLoss([("Loss.Train.0.CELoss", 1.0, CELoss())])
    wide = TrainStep(engine_support.TinyNet(class_num=4), loss, to_static=to_static, distributed=False, class_num=3)
    with pytest.raises(ConfigError, match=r"Arch: the model returned logits of shape \[-?4, 4\], expected \[batch, 3\] \(class_num\)"):
        wide(images, labels)
    if to_static:
        return  # a tuple fails the loss inside Paddle's tracing, which is best kept free of errors in a long-lived process
    pair = TrainStep(_PairNet(), loss, to_static=to_static, distributed=False, class_num=3)
    with pytest.raises(ConfigError, match=r"Arch: the model returned a tuple, expected logits"):
        pair(images, labels)


def test_compiled_training_resumes_bitwise(data, registry, tmp_path):
    straight = engine_support.tiny_config(data, tmp_path / "straight", epochs=2,
                                          arch={"name": "TinyNet", "class_num": 3, "dropout": 0.3})
    straight["Global"]["to_static"] = True
    train(read_plan(copy.deepcopy(straight), registry), distributed=False)
    killed = copy.deepcopy(straight)
    killed["Global"]["output_dir"] = str(tmp_path / "killed")
    killed["Global"]["callbacks"] = [{"MetricsLog": None}, {"CrashAfterEpoch": {"epoch": 1}}]
    with pytest.raises(KeyboardInterrupt):
        train(read_plan(copy.deepcopy(killed), registry), distributed=False)
    killed["Global"]["callbacks"] = [{"MetricsLog": None}]
    killed["Global"]["checkpoints"] = str(tmp_path / "killed" / "TinyNet" / "latest")
    train(read_plan(killed, registry), distributed=False)
    a = load_state_dict_file(tmp_path / "straight" / "TinyNet" / "latest.pdparams")
    b = load_state_dict_file(tmp_path / "killed" / "TinyNet" / "latest.pdparams")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_two_processes_train_compiled_steps_in_step(fake_dist, tmp_path):
    fake_dist("corolla-engine-test", {"engine_support": Path(engine_support.__file__).read_text()})
    plugin_path = sys.path[0]
    data = make_list_dataset(tmp_path / "data", num_classes=3, images_per_class=8, image_size=32, val_fraction=0.0)
    config = engine_support.tiny_config(data, tmp_path / "out", epochs=1, batch=4, flip=False,
                                        arch={"name": "TinyNet", "class_num": 3, "batch_norm": False})
    config["Global"].update(to_static=True, eval_during_train=False)
    config["Global"]["callbacks"] = [{"ConsoleLogger": None}, {"SaveRankWeights": {"folder": str(tmp_path)}}]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([plugin_path, os.environ.get("PYTHONPATH", "")])}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
         str(tmp_path / "logs"), str(Path(sys.executable).with_name("corolla")), "train", "-c", str(config_file)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    logs = "".join((tmp_path / "logs" / f"workerlog.{rank}").read_text()[-3000:] for rank in (0, 1))
    assert done.returncode == 0, done.stdout[-3000:] + logs
    assert "[Train][Epoch 1/1][Iter 3/3]" in logs  # 24 images, 2 ranks of 4 per step
    assert "do not have 'place'" not in logs and "New Executor" not in logs  # Paddle's noise, quietened by the command
    rank0, rank1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    for name in rank0.files:  # different batches on each rank: identical only if the gradients were averaged
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
