"""Keeping a GPU fed, checked on the CPU: device transforms (uint8 batches finished where they
are) give the host's batches bit for bit, the worker count for ``auto``, loss reads every few
steps with exact epoch averages and NaN steps, and the float16 loss scaler's Paddle 2.6 fixes."""
from __future__ import annotations

import copy
import json
import os
import warnings

import numpy as np
import paddle
import pytest

import corolla
import engine_support
from corolla.config.planner import read_plan
from corolla.data.device import DevicePipeline, device_pipeline, worker_count
from corolla.data.randomness import reseed
from corolla.engine import train as train_module
from corolla.engine.loss_log import LossLog
from corolla.engine.precision import _GradScaler, loadable_scaler_state
from corolla.engine.train import TrainingDiverged, train
from corolla.testing.datasets import make_list_dataset

DECODE = {"DecodeImage": {"to_rgb": True, "channel_first": False}}
NORMALIZE = {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                "order": ""}}


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=6, image_size=30, seed=2)


def loader_config(data, ops: list, *, device_transforms, workers: int = 0, batch_ops: list | None = None) -> dict:
    dataset = {"name": "ImageNetDataset", "image_root": str(data.root), "cls_label_path": str(data.train_list),
               "transform_ops": copy.deepcopy(ops)}
    if batch_ops:
        dataset["batch_transform_ops"] = batch_ops
    train = {"dataset": dataset, "sampler": {"name": "DistributedBatchSampler", "batch_size": 4, "shuffle": True},
             "loader": {"num_workers": workers, "device_transforms": device_transforms}}
    return {"Global": {"seed": 3, "image_shape": [3, 16, 16]}, "Arch": {"name": "TinyNet", "class_num": 3},
            "DataLoader": {"Train": train}}


CROP, CHW = {"RandCropImage": {"size": 16}}, {"ToCHWImage": None}
FP16_CHW = {"NormalizeImage": {**NORMALIZE["NormalizeImage"], "order": "chw", "output_fp16": True}}
FOUR_CHANNELS = {"NormalizeImage": {**NORMALIZE["NormalizeImage"], "channel_num": 4}}
CASES = {
    "flip horizontally, normalise": [DECODE, CROP, {"RandFlipImage": {"flip_code": 1}}, NORMALIZE],
    "flip both ways, CHW, float16": [DECODE, CROP, {"RandFlipImage": {"flip_code": -1}}, CHW, FP16_CHW],
    "flip vertically, 4 channels, to CHW": [DECODE, CROP, {"RandFlipImage": {"flip_code": 0}}, FOUR_CHANNELS, CHW],
    "no normalisation": [DECODE, {"ResizeImage": {"size": 16}}, {"RandFlipImage": {"flip_code": 1}}],
}


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_device_transforms_give_the_hosts_batches(registry, data, case, workers):
    def batches(device_transforms):
        loader = engine_support.loader_of(loader_config(data, CASES[case], device_transforms=device_transforms,
                                                        workers=workers), "Train", registry, rank=0, world_size=1)
        assert loader.on_device == device_transforms
        loader.set_epoch(4)
        return [(images.numpy(), labels.numpy()) for images, labels in loader]

    host, device = batches(False), batches(True)
    assert len(host) == len(device) == 3
    for (a, la), (b, lb) in zip(host, device):
        assert a.dtype == b.dtype and a.shape == b.shape and a.shape[1] in (3, 4)
        if a.dtype == np.float16:  # Paddle 2.6's CPU cast to float16 may round the last bit otherwise
            np.testing.assert_allclose(b, a, rtol=2.0**-10, atol=0)
        else:
            np.testing.assert_array_equal(b, a)
        np.testing.assert_array_equal(la, lb)


def test_a_device_pipeline_preprocesses_one_image_as_the_host_does(registry, data):
    plan = read_plan(loader_config(data, CASES["flip horizontally, normalise"], device_transforms=True), registry)
    host = engine_support.pipeline_of(CASES["flip horizontally, normalise"], registry)
    device = device_pipeline(engine_support.pipeline_of(CASES["flip horizontally, normalise"], registry),
                             plan.loaders["Train"], "cpu")
    assert isinstance(device, DevicePipeline) and device.device_start == 2
    image = next(data.root.rglob("*.jpg"))
    reseed(1)  # the same draws for both (the crop's and the flip's)
    expected = host(image)
    reseed(1)
    np.testing.assert_array_equal(device(image), expected)


def test_auto_uses_the_device_on_gpu_only_and_says_why_when_it_cannot(registry, data):
    ops = CASES["flip horizontally, normalise"]
    auto = read_plan(loader_config(data, ops, device_transforms="auto"), registry).loaders["Train"]
    assert not isinstance(device_pipeline(engine_support.pipeline_of(ops, registry), auto, "cpu"), DevicePipeline)
    assert isinstance(device_pipeline(engine_support.pipeline_of(ops, registry), auto, "gpu"), DevicePipeline)
    erasing = [*ops, {"RandomErasing": {"EPSILON": 0.5}}]
    forced = read_plan(loader_config(data, erasing, device_transforms=True), registry).loaders["Train"]
    with pytest.warns(UserWarning, match="last transform \\(RandomErasing\\) has no device version"):
        made = device_pipeline(engine_support.pipeline_of(erasing, registry), forced, "gpu")
    assert not isinstance(made, DevicePipeline)
    mixup = read_plan(loader_config(data, ops, device_transforms=True, batch_ops=[{"MixupOperator": {"alpha": 0.2}}]),
                      registry).loaders["Train"]
    with pytest.warns(UserWarning, match="batch_transform_ops run on the finished batch"):
        assert not isinstance(device_pipeline(engine_support.pipeline_of(ops, registry), mixup, "gpu"), DevicePipeline)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto says nothing
        auto_erasing = read_plan(loader_config(data, erasing, device_transforms="auto"), registry).loaders["Train"]
        device_pipeline(engine_support.pipeline_of(erasing, registry), auto_erasing, "gpu")


def test_auto_worker_count_fits_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert worker_count("auto", "cpu") == 0
    assert worker_count("auto", "gpu") == 14
    assert worker_count("auto", "gpu", processes_per_machine=4) == 2
    assert worker_count(3, "gpu") == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert worker_count("auto", "gpu") == 16


class ReadEveryThree(LossLog):
    """The GPU's way of reading the loss (every 3 steps), on the CPU."""

    def __init__(self, world_size: int, every: int) -> None:
        super().__init__(world_size, 3)


def test_reading_the_loss_every_few_steps_keeps_epoch_averages(data, registry, tmp_path, monkeypatch):
    config = engine_support.tiny_config(data, tmp_path / "every", epochs=2, batch=2)
    config["Global"]["eval_during_train"] = False
    every = train(read_plan(copy.deepcopy(config), registry), distributed=False)
    monkeypatch.setattr(train_module, "LossLog", ReadEveryThree)
    config["Global"]["output_dir"] = str(tmp_path / "third")
    third = train(read_plan(config, registry), distributed=False)

    def records(run):
        return [json.loads(line) for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]

    epochs = [[r for r in records(run) if r["event"] == "epoch"] for run in (every, third)]
    for a, b in zip(*epochs):
        assert a["loss"] == b["loss"] and a["CELoss"] == b["CELoss"]  # every step read, in the same order
    steps = {r["step"]: r for r in records(third) if r["event"] == "step"}  # print_batch_step 1: all steps logged
    read = [s for s in steps if s % 3 == 0 or s == third.steps_per_epoch]
    assert [s for s, r in steps.items() if "loss" in r] == read
    assert all("images_per_sec" in r and "lr" in r for r in steps.values())


def test_a_nan_between_reads_is_reported_at_its_step(data, registry, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "LossLog", ReadEveryThree)
    config = engine_support.tiny_config(data, tmp_path, epochs=1, batch=2)
    config["Loss"]["Train"] = [{"NanAfterCalls": {"calls": 5}}]
    with pytest.raises(TrainingDiverged, match="at epoch 1, step 5 \\(global step 5\\) with lr "):
        train(read_plan(config, registry), distributed=False)


def test_the_float16_scaler_lowers_its_scale_where_numpy_refuses_float_of_arrays():
    """Paddle 2.6's GradScaler prints the scale with float(shape-[1] Tensor), an error from NumPy 2.5
    on (a DeprecationWarning before): the update must not need it. The scaler is off on CPU, so
    it is given the state a GPU run has after an overflow."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaler = _GradScaler(init_loss_scaling=1024.0, use_dynamic_loss_scaling=True)
    scaler._enable, scaler._scale = True, paddle.to_tensor(np.array([1024.0], np.float32))
    scaler._cache_founf_inf = scaler._cache_found_inf = True  # Paddle 2.6 / 3.x spelling
    scaler._incr_count = scaler._decr_count = 0
    scaler._decr_every_n_nan_or_inf, scaler._decr_ratio = 1, 0.5
    scaler._incr_every_n_steps, scaler._incr_ratio = 1000, 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        scaler._update()
    assert scaler._scale.shape == [1] and scaler._scale.numpy().tolist() == [512.0]


def test_a_saved_scaler_state_loads_whatever_shape_the_scale_came_back_in():
    for saved in (1024.0, np.float32(1024.0), np.array([1024.0])):
        state = loadable_scaler_state({"scale": saved, "incr_count": 3})
        assert state["scale"][0] == 1024.0 and state["scale"].shape == (1,) and state["incr_count"] == 3
