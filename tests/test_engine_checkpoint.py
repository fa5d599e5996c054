"""Checkpoints: atomic files, safe reading, optimizer state across processes; EMA."""
from __future__ import annotations

import os
import pickle

import numpy as np
import paddle
import pytest

from corolla.engine import checkpoint, checkpointing, files
from corolla.engine.ema import ModelEMA
from corolla.plugin.errors import DataError, WeightsError
from corolla.engine.safe_pickle import load_state_dict_file


def small_net(classes: int = 3) -> paddle.nn.Layer:
    return paddle.nn.Sequential(paddle.nn.Linear(4, 5), paddle.nn.BatchNorm1D(5), paddle.nn.Linear(5, classes))


def test_nested_state_survives_flattening_as_plain_arrays(tmp_path):
    state = {"epoch": 3, "best_metric": 0.75, "best_metric_name": "top1", "best_epoch": None,
             "lr_schedule": {"last_epoch": 12, "LinearWarmup_LR": {"last_lr": 0.1}}, "flag": True}
    files.write_checkpoint(tmp_path / "latest", {".pdstates": checkpoint.flatten(state)})
    arrays = load_state_dict_file(tmp_path / "latest.pdstates")
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    restored = checkpoint.unflatten(arrays)
    assert restored == {k: v for k, v in state.items() if v is not None}
    assert type(restored["epoch"]) is int and type(restored["flag"]) is bool


def test_an_interrupted_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    prefix = tmp_path / "latest"
    files.write_checkpoint(prefix, {".pdparams": {"w": np.zeros(3)}, ".pdstates": {"epoch": np.array(1)}})
    calls = {"n": 0}
    real_dump = pickle.dump

    def dump_then_die(obj, stream, protocol=None):
        calls["n"] += 1
        if calls["n"] == 2:
            stream.write(b"partial")
            raise KeyboardInterrupt  # a kill while the second file is written
        real_dump(obj, stream, protocol=protocol)

    monkeypatch.setattr(pickle, "dump", dump_then_die)
    with pytest.raises(KeyboardInterrupt):
        files.write_checkpoint(prefix, {".pdparams": {"w": np.ones(3)}, ".pdstates": {"epoch": np.array(2)}})
    monkeypatch.setattr(pickle, "dump", real_dump)
    assert load_state_dict_file(tmp_path / "latest.pdparams")["w"].tolist() == [0, 0, 0]
    assert load_state_dict_file(tmp_path / "latest.pdstates")["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pdparams", "latest.pdstates"]


def test_checkpoint_files_and_the_run_lock_get_the_mode_open_gives(tmp_path):
    old = os.umask(0o022)
    try:
        files.write_checkpoint(tmp_path / "latest", {".pdparams": {"w": np.zeros(3)}, ".pdstates": {"epoch": np.array(1)}})
        (tmp_path / "latest.pdparams").chmod(0o664)
        files.write_checkpoint(tmp_path / "latest", {".pdparams": {"w": np.ones(3)}, ".pdstates": {"epoch": np.array(2)}})
        lock = checkpointing.RunLock(tmp_path)
        lock.acquire()
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
        lock.release()
    finally:
        os.umask(old)
    # new files 0o666 less the umask (not mkstemp's 0o600, nor os.open's 0o777); a replaced one keeps its chmod
    assert modes == {"latest.pdparams": "0o664", "latest.pdstates": "0o644", ".lock": "0o644"}


def test_optimizer_state_moves_between_differently_named_instances():
    paddle.seed(1)
    a = small_net()
    b = small_net()  # another instance: other global parameter names
    b.set_state_dict(a.state_dict())
    assert [p.name for p in a.parameters()] != [p.name for p in b.parameters()]
    x = paddle.randn([6, 4])
    opt_a = paddle.optimizer.Adam(0.01, parameters=a.parameters())
    a(x).sum().backward()
    opt_a.step()
    opt_a.clear_grad()
    arrays = checkpoint.optimizer_arrays(opt_a, a)
    assert any(k.startswith("0.weight_moment1") for k in arrays)
    b.set_state_dict(a.state_dict())
    opt_b = paddle.optimizer.Adam(0.01, parameters=b.parameters())
    checkpoint.load_optimizer_arrays(opt_b, b, arrays)
    for model, opt in ((a, opt_a), (b, opt_b)):
        model(x).sum().backward()
        opt.step()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy(), err_msg=name)


def test_weights_with_another_head_load_the_rest_and_say_what_was_kept(tmp_path, caplog):
    source, target = small_net(classes=3), small_net(classes=7)
    files.write_checkpoint(tmp_path / "best_model", {".pdparams": checkpoint.model_arrays(source)})
    with caplog.at_level("WARNING"):
        checkpoint.load_weights(target, tmp_path / "best_model", key_path="Global.pretrained_model")
    assert "has 3 classes, the model 7; kept the new classifier (2.weight, 2.bias)" in caplog.text
    np.testing.assert_array_equal(target[0].weight.numpy(), source[0].weight.numpy())
    with pytest.raises(DataError, match="Global.pretrained_model: file not found"):
        checkpoint.load_weights(target, tmp_path / "missing", key_path="Global.pretrained_model")


def test_weights_of_another_model_are_an_error_and_change_nothing(tmp_path):
    source = paddle.nn.Sequential(paddle.nn.Linear(4, 6), paddle.nn.BatchNorm1D(6), paddle.nn.Linear(6, 3))
    target = small_net(classes=3)
    before = {k: v.numpy().copy() for k, v in target.state_dict().items()}
    files.write_checkpoint(tmp_path / "other", {".pdparams": checkpoint.model_arrays(source)})
    with pytest.raises(WeightsError, match=r"does not fit Global.pretrained_model: 7 shape mismatches .*another model"):
        checkpoint.load_weights(target, tmp_path / "other", key_path="Global.pretrained_model")
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_resuming_needs_exactly_the_same_model(tmp_path):
    source, target = small_net(classes=3), small_net(classes=7)
    files.write_checkpoint(tmp_path / "latest", {".pdparams": checkpoint.model_arrays(source)})
    with pytest.raises(WeightsError, match=r"2 shape mismatches .*2.weight \[5, 3\] vs \[5, 7\]"):
        checkpoint.load_weights(target, tmp_path / "latest", key_path="Global.checkpoints", strict=True)
    extra = {**checkpoint.model_arrays(source), "extra.weight": np.zeros(2, np.float32)}
    files.write_checkpoint(tmp_path / "more", {".pdparams": extra})
    with pytest.raises(WeightsError, match="1 entries the model does not have: extra.weight"):
        checkpoint.load_weights(small_net(classes=3), tmp_path / "more", key_path="Global.checkpoints", strict=True)


@pytest.mark.parametrize("given, loaded", [("best_model", ".pdparams"), ("best_model.pdparams", ".pdparams"),
                                           ("best_model.pdopt", ".pdparams"), ("best_model.pdstates", ".pdparams"),
                                           ("best_model.pdema", ".pdema")])  # the moving average's weights, as named
def test_a_checkpoint_given_by_any_of_its_files_is_its_prefix(tmp_path, given, loaded):
    assert files.checkpoint_file(tmp_path / given, ".pdstates") == tmp_path / "best_model.pdstates"
    sources, target = {".pdparams": small_net(), ".pdema": small_net()}, small_net()
    files.write_checkpoint(tmp_path / "best_model", {suffix: checkpoint.model_arrays(net) for suffix, net in sources.items()})
    assert checkpoint.load_weights(target, tmp_path / given, key_path="Global.pretrained_model") == tmp_path / f"best_model{loaded}"
    np.testing.assert_array_equal(target[2].weight.numpy(), sources[loaded][2].weight.numpy())


def test_a_file_that_is_no_training_state_shows_a_few_of_its_keys(tmp_path):
    files.write_checkpoint(tmp_path / "weights", {".pdstates": {f"layer{i:03}.weight": np.zeros(1) for i in range(200)}})
    with pytest.raises(DataError, match=r"weights.pdstates is not a corolla training state .*found layer000.weight, "
                                        r"layer001.weight, layer002.weight, layer003.weight, layer004.weight, "
                                        r"\.\.\. \(200 in all\)\); to start from weights only") as failure:
        checkpointing.read_states(str(tmp_path / "weights"))
    assert "layer005" not in str(failure.value)


def test_a_run_folder_given_as_checkpoint_says_which_checkpoint_was_meant(tmp_path):
    files.write_checkpoint(tmp_path / "Net" / "latest", {".pdstates": checkpoint.flatten({"epoch": 1, "lr_schedule": {}})})
    with pytest.raises(DataError, match=rf"file not found: {tmp_path / 'Net.pdstates'} .*did you mean {tmp_path / 'Net' / 'latest'}\?"):
        checkpointing.read_states(str(tmp_path / "Net"))
    files.write_checkpoint(tmp_path / "Net" / "latest", {".pdparams": {"w": np.zeros(1)}})
    with pytest.raises(DataError, match=rf"file not found: .*best_model.pdparams; the run in {tmp_path / 'Net'} wrote no "
                                        rf"best_model: it evaluated no epoch .*its last checkpoint is {tmp_path / 'Net' / 'latest'}$"):
        checkpoint.load_weights(small_net(), tmp_path / "Net" / "best_model", key_path="Global.pretrained_model")


def test_ema_averages_every_entry_and_swaps_weights_in_and_out():
    model = small_net()
    start = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    ema = ModelEMA(model, decay=0.9)
    for p in model.parameters():
        p.set_value(p.numpy() + 1.0)
    ema.update(model)
    for name, value in ema.arrays().items():
        np.testing.assert_allclose(value, 0.9 * start[name] + 0.1 * (start[name] + 1.0), rtol=1e-6)
    with ema.applied(model):
        np.testing.assert_allclose(model[0].weight.numpy(), ema.arrays()["0.weight"])
    np.testing.assert_allclose(model[0].weight.numpy(), start["0.weight"] + 1.0)
