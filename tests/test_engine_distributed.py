"""Data-parallel training with Paddle's launcher, 2 CPU processes (gloo): ranks stay
identical, only rank 0 writes, evaluation is exact, and the run equals one process
with the same global batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import corolla
import engine_support
from corolla.config.planner import read_plan
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset
from corolla.engine.safe_pickle import load_state_dict_file


def config_for(data, out: Path, batch: int) -> dict:
    # no BatchNorm (its statistics are per process on CPU) and no random flips (drawn per rank)
    config = engine_support.tiny_config(data, out, epochs=2, batch=batch, flip=False,
                                        arch={"name": "TinyNet", "class_num": data.num_classes, "batch_norm": False})
    config["Global"]["callbacks"] = [{"ConsoleLogger": None}, {"MetricsLog": None}, {"SaveRankWeights": {"folder": str(out)}}]
    config["DataLoader"]["Eval"]["sampler"]["batch_size"] = 4
    return config


def evals(folder: Path) -> list[dict]:
    return [r for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines()) if r["event"] == "eval"]


def test_two_processes_equal_one_with_the_same_global_batch(fake_dist, tmp_path):
    fake_dist("corolla-engine-test", {"engine_support": Path(engine_support.__file__).read_text()})
    plugin_path = sys.path[0]  # where fake_dist put the distribution
    # 24 training images: 3 global batches of 8; 9 validation images: rank 1 gets one repeat
    data = make_list_dataset(tmp_path / "data", num_classes=3, images_per_class=11, val_fraction=0.28, image_size=32)
    assert (data.num_train, data.num_val) == (24, 9)

    two = tmp_path / "two"
    two.mkdir()
    config_file = tmp_path / "two.yaml"
    config_file.write_text(yaml.safe_dump(config_for(data, two, batch=4)))
    script = Path(sys.executable).with_name("corolla")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([plugin_path, os.environ.get("PYTHONPATH", "")])}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(tmp_path / "logs"),
         str(script), "train", "-c", str(config_file)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    logs = {rank: (tmp_path / "logs" / f"workerlog.{rank}").read_text() for rank in (0, 1)}
    assert done.returncode == 0, done.stdout[-3000:] + logs[0][-3000:] + logs[1][-3000:]

    rank0, rank1 = np.load(two / "rank0.npz"), np.load(two / "rank1.npz")
    for name in rank0.files:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
    assert "[Train][Epoch 2/2][Iter 3/3]" in logs[0] and "[Train]" not in logs[1]  # only rank 0 reports
    folder = two / "TinyNet"
    assert json.loads((folder / "manifest.json").read_text())["world_size"] == 2
    assert not list(folder.glob(".tmp-*"))

    one = tmp_path / "one"
    registry = corolla.load_registry(extra_plugins=[("engine_support", engine_support)])
    run = train(read_plan(config_for(data, one, batch=8), registry), distributed=False)
    assert run.steps_per_epoch == 3
    single = np.load(one / "rank0.npz")
    for name in single.files:
        # the same mean gradient, summed in another order: float32 rounding only
        np.testing.assert_allclose(rank0[name], single[name], rtol=1e-4, atol=1e-6, err_msg=name)
    for a, b in zip(evals(folder), evals(one / "TinyNet")):
        assert a["top1"] == b["top1"] and a["top2"] == b["top2"]  # every validation image counted once
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    weights = load_state_dict_file(folder / "latest.pdparams")
    np.testing.assert_array_equal(weights["fc.weight"], rank0["fc.weight"])
