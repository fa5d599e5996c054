"""The GPU path, where Paddle sees a CUDA device (skipped elsewhere, saying why): every verb once
with ``Global.device: gpu``, batches finished on the GPU, AMP (bfloat16, float16 with loss
scaling), ``Global.to_static``, and ``Arch.use_sync_bn`` over two GPUs when there are two.

On a machine without Paddle, benchmarks/gpu_session.sh runs this file with the kit of
../shared/gpu (Paddle 2.6.2 for CUDA 12).
"""
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
from corolla.engine.evaluate import evaluate_config
from corolla.engine.export import export
from corolla.engine.inference import infer
from corolla.engine.predict import predict
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset


def _no_gpu_reason() -> str | None:
    if not paddle.device.is_compiled_with_cuda():
        return f"Paddle {paddle.__version__} here is a CPU build (a GPU build: pip install 'corolla[gpu]', docs/gpu.md)"
    if paddle.device.cuda.device_count() == 0:
        return "this Paddle has CUDA but sees no GPU (check the driver and CUDA_VISIBLE_DEVICES)"
    return None


pytestmark = pytest.mark.skipif(_no_gpu_reason() is not None, reason=str(_no_gpu_reason()))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=16, image_size=40, seed=4)


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


def gpu_config(data, out: Path, **global_settings) -> dict:
    config = engine_support.tiny_config(data, out, epochs=2)
    config["Global"].update(device="gpu", **global_settings)
    config["Global"]["callbacks"] = [{"ConsoleLogger": None}, {"MetricsLog": None}]
    for mode in ("Train", "Eval"):
        config["DataLoader"][mode]["loader"]["num_workers"] = 2  # batches copied to the GPU by paddle's reader
    return config


def step_records(folder: Path) -> list[dict]:
    return [r for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines()) if r["event"] == "step"]


@pytest.fixture(scope="module")
def trained(data, registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_run")
    config = gpu_config(data, out)
    return config, train(read_plan(copy.deepcopy(config), registry), distributed=False)


def test_training_runs_on_the_gpu(trained):
    _, run = trained
    assert all(p.place.is_gpu_place() for p in run.model.parameters())
    assert json.loads((run.output_dir / "manifest.json").read_text())["device"] == "gpu"
    logged = step_records(run.output_dir)
    assert logged and all(np.isfinite(r["loss"]) for r in logged if "loss" in r)
    assert run.best_metric is not None


def test_eval_infer_export_and_predict_run_on_the_gpu(trained, registry, data, tmp_path):
    config, run = trained
    config = copy.deepcopy(config)
    config["Global"]["pretrained_model"] = str(run.output_dir / "best_model")
    config["Global"]["save_inference_dir"] = str(tmp_path / "inference")
    plan = read_plan(config, registry)
    results = evaluate_config(plan)
    assert results["top1"] == pytest.approx(run.best_metric, abs=1e-6)
    inferred = infer(plan)
    folder = export(plan)
    assert (folder / "inference.pdiparams").is_file()
    predicted = predict(plan)
    assert [p.class_ids[0] for p in predicted] == [p.class_ids[0] for p in inferred]
    for a, b in zip(inferred, predicted):
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-3)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_are_finished_on_the_gpu_as_on_the_host(registry, data, workers):
    config = gpu_config(data, Path("unused"))
    config["DataLoader"]["Train"]["loader"]["num_workers"] = workers

    def batches(device: str, device_transforms: bool) -> list:
        paddle.set_device(device)  # where paddle's reader puts the workers' batches
        settings = copy.deepcopy(config)
        settings["DataLoader"]["Train"]["loader"]["device_transforms"] = device_transforms
        plan = read_plan(settings, registry)
        from corolla.data.loader import build_dataloader

        loader = build_dataloader(plan.loaders["Train"], registry, class_num=3, seed=1, rank=0, world_size=1,
                                  image_shape=plan.settings.image_shape, device=device)
        assert loader.on_device == device_transforms
        made = [(images, labels) for images, labels in loader]
        assert all(images.place.is_gpu_place() == (device == "gpu") for images, _ in made)
        return [(images.numpy(), labels.numpy()) for images, labels in made]

    host = batches("cpu", False)
    for device_transforms in (False, True):
        on_gpu = batches("gpu", device_transforms)
        assert len(on_gpu) == len(host)
        for (a, la), (b, lb) in zip(host, on_gpu):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
            np.testing.assert_array_equal(lb, la)


@pytest.mark.parametrize("amp", [
    {"dtype": "bfloat16", "level": "O1"},
    {"dtype": "bfloat16", "level": "O2"},
    {"dtype": "float16", "level": "O1", "scale_loss": 65536.0, "use_dynamic_loss_scaling": True},
    {"dtype": "float16", "level": "O2", "scale_loss": 1024.0, "use_dynamic_loss_scaling": True},
])
def test_mixed_precision_trains_and_resumes(data, registry, tmp_path, amp):
    config = gpu_config(data, tmp_path / "straight")
    config["AMP"] = amp
    config["Global"]["callbacks"] = [{"MetricsLog": None}, {"CrashAfterEpoch": {"epoch": 1}}]
    with pytest.raises(KeyboardInterrupt):
        train(read_plan(copy.deepcopy(config), registry), distributed=False)
    config["Global"]["callbacks"] = [{"MetricsLog": None}]
    config["Global"]["checkpoints"] = str(tmp_path / "straight" / "TinyNet" / "latest")
    run = train(read_plan(config, registry), distributed=False)
    assert run.epoch == 2
    logged = [r["loss"] for r in step_records(run.output_dir) if "loss" in r]
    assert logged and all(np.isfinite(logged))
    states = load_state_dict_file(run.output_dir / "latest.pdstates")
    assert bool(states.get("loss_scaler/scale") is not None) == (amp["dtype"] == "float16")


def test_compiled_training_steps_train_as_eager_ones(data, registry, tmp_path):
    runs = {}
    for to_static in (False, True):
        config = gpu_config(data, tmp_path / str(to_static), to_static=to_static, eval_during_train=False)
        config["Global"]["print_batch_step"] = 1
        runs[to_static] = train(read_plan(config, registry), distributed=False)
    eager, static = (step_records(runs[k].output_dir) for k in (False, True))
    assert len(eager) == len(static) > 0
    for a, b in zip(eager, static):
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-3, abs=1e-5)


@pytest.mark.skipif(_no_gpu_reason() is not None or paddle.device.cuda.device_count() < 2,
                    reason=_no_gpu_reason() or "use_sync_bn needs two GPUs; this machine has fewer")
def test_sync_batch_norm_over_two_gpus(fake_dist, data, tmp_path):
    fake_dist("corolla-engine-test", {"engine_support": Path(engine_support.__file__).read_text()})
    plugin_path = sys.path[0]
    config = gpu_config(data, tmp_path / "out", eval_during_train=False)
    config["Arch"]["use_sync_bn"] = True
    config["Global"]["callbacks"] = [{"ConsoleLogger": None}, {"SaveRankWeights": {"folder": str(tmp_path)}}]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    launcher = tmp_path / "corolla_main.py"
    launcher.write_text("import sys\nfrom corolla.cli.main import main\nsys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([plugin_path, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--gpus", "0,1", "--log_dir", str(tmp_path / "logs"),
         str(launcher), "train", "-c", str(tmp_path / "config.yaml")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    logs = "".join((tmp_path / "logs" / f"workerlog.{r}").read_text()[-3000:] for r in (0, 1)
                   if (tmp_path / "logs" / f"workerlog.{r}").is_file())
    assert done.returncode == 0, done.stdout[-3000:] + logs
    rank0, rank1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    for name in rank0.files:  # each rank saw other images: equal weights need averaged gradients
        np.testing.assert_allclose(rank1[name], rank0[name], rtol=1e-5, atol=1e-6, err_msg=name)
    weights = load_state_dict_file(tmp_path / "out" / "TinyNet" / "latest.pdparams")
    np.testing.assert_array_equal(weights["fc.weight"], rank0["fc.weight"])
