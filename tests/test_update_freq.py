"""``Global.update_freq``: gradient accumulation as PaddleClas does it. Each batch's loss
is divided by update_freq, the optimizer, the lr schedule (sized in updates) and the EMA
step once per update_freq batches, and an epoch runs a whole number of updates. So
update_freq k with batches of b trains as batches of k*b do, in one process or several,
and resuming stays bitwise exact."""
from __future__ import annotations

import copy
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
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 24 training images: 3 batches of 8, 6 of 4, 12 of 2
    made = make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=11, val_fraction=0.28,
                             image_size=32)
    assert made.num_train == 24
    return made


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


def config_for(data, out: Path, *, batch: int, update_freq: int = 1, epochs: int = 2) -> dict:
    # no BatchNorm (its statistics see batches, not updates) and no random flips (drawn per batch)
    config = engine_support.tiny_config(data, out, epochs=epochs, batch=batch, flip=False,
                                        arch={"name": "TinyNet", "class_num": data.num_classes, "batch_norm": False})
    config["Global"]["update_freq"] = update_freq
    config["Global"]["eval_during_train"] = False
    return config


def weights(folder: Path) -> dict:
    return load_state_dict_file(folder / "TinyNet" / "latest.pdparams")


def assert_close(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:  # the same mean gradient, summed in another order: float32 rounding only
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_two_batches_of_4_accumulated_train_as_one_batch_of_8(data, registry, tmp_path):
    one = train(read_plan(config_for(data, tmp_path / "one", batch=8), registry), distributed=False)
    accumulated = train(read_plan(config_for(data, tmp_path / "acc", batch=4, update_freq=2), registry), distributed=False)
    assert (one.steps_per_epoch, accumulated.steps_per_epoch) == (3, 6)
    assert one.lr_schedule.last_epoch == accumulated.lr_schedule.last_epoch == 6  # the schedule counts updates
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "acc"))
    steps = [json.loads(line) for line in (tmp_path / "acc" / "TinyNet" / "metrics.jsonl").read_text().splitlines()
             if '"step"' in line]
    lrs = [record["lr"] for record in steps if record["epoch"] == 1]
    assert len(lrs) == 6 and lrs[0] == lrs[1] and lrs[2] == lrs[3] and lrs[1] != lrs[2]  # the lr moves per update


def test_an_epoch_ends_with_an_update_and_a_too_large_update_freq_is_1(data, registry, tmp_path):
    run = train(read_plan(config_for(data, tmp_path / "a", batch=4, update_freq=4, epochs=1), registry), distributed=False)
    assert run.steps_per_epoch == 4 and run.global_step == 4 and run.lr_schedule.last_epoch == 1  # 6 batches: 1 update
    with pytest.warns(UserWarning, match=r"Global.update_freq: 7 is more than the 6 batches of an epoch"):
        run = train(read_plan(config_for(data, tmp_path / "b", batch=4, update_freq=7, epochs=1), registry), distributed=False)
    assert run.steps_per_epoch == 6 and run.lr_schedule.last_epoch == 6


def test_resume_with_update_freq_gives_bitwise_the_same_weights_and_ema(data, registry, tmp_path):
    straight = config_for(data, tmp_path / "straight", batch=4, update_freq=2, epochs=2)
    straight["Arch"]["dropout"] = 0.3  # random numbers in the model too
    straight["EMA"] = {"decay": 0.9}
    train(read_plan(copy.deepcopy(straight), registry), distributed=False)

    killed = copy.deepcopy(straight)
    killed["Global"]["output_dir"] = str(tmp_path / "killed")
    killed["Global"]["callbacks"] = [{"MetricsLog": None}, {"CrashAfterEpoch": {"epoch": 1}}]
    with pytest.raises(KeyboardInterrupt):
        train(read_plan(copy.deepcopy(killed), registry), distributed=False)
    killed["Global"]["callbacks"] = [{"MetricsLog": None}]
    killed["Global"]["checkpoints"] = str(tmp_path / "killed" / "TinyNet" / "latest")
    run = train(read_plan(killed, registry), distributed=False)
    assert run.start_epoch == 2 and run.global_step == 12

    for suffix in (".pdparams", ".pdema"):
        a = load_state_dict_file(tmp_path / "straight" / "TinyNet" / f"latest{suffix}")
        b = load_state_dict_file(tmp_path / "killed" / "TinyNet" / f"latest{suffix}")
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name + suffix)
    sa, sb = (load_state_dict_file(tmp_path / f / "TinyNet" / "latest.pdstates") for f in ("straight", "killed"))
    for key in ("global_step", "lr_schedule/last_epoch", "lr_schedule/last_lr"):
        assert sa[key] == sb[key], key


@pytest.mark.slow
def test_two_processes_accumulating_train_as_one_with_the_whole_batch(fake_dist, data, registry, tmp_path):
    """2 processes x batches of 2 x update_freq 2 = one process with batches of 8."""
    fake_dist("corolla-engine-test", {"engine_support": Path(engine_support.__file__).read_text()})
    plugin_path = sys.path[0]
    two = tmp_path / "two"
    two.mkdir()
    config = config_for(data, two, batch=2, update_freq=2)
    config["Global"]["callbacks"] = [{"MetricsLog": None}, {"SaveRankWeights": {"folder": str(two)}}]
    config_file = tmp_path / "two.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([plugin_path, os.environ.get("PYTHONPATH", "")])}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(tmp_path / "logs"),
         str(Path(sys.executable).with_name("corolla")), "train", "-c", str(config_file)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    logs = [(tmp_path / "logs" / f"workerlog.{rank}").read_text() for rank in (0, 1)]
    assert done.returncode == 0, done.stdout[-3000:] + logs[0][-3000:] + logs[1][-3000:]
    rank0, rank1 = np.load(two / "rank0.npz"), np.load(two / "rank1.npz")
    for name in rank0.files:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)

    train(read_plan(config_for(data, tmp_path / "one", batch=8), registry), distributed=False)
    assert_close(weights(two), weights(tmp_path / "one"))
