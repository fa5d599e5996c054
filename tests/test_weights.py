"""corolla.engine.weights and model_zoo: safe .pdparams reading, pretrained loading, the download cache."""
from __future__ import annotations

import functools
import http.server
import logging
import os
import pickle
import threading
import urllib.error
from pathlib import Path

import numpy as np
import paddle
import pytest

from corolla.plugin.errors import ComponentArgumentError, WeightsError
from corolla.engine.model_zoo import PretrainedWeights, cache_path, describe_weights, weights_dir
from corolla.engine.weights import load_pretrained, load_state_dict_file


class Tiny(paddle.nn.Layer):
    """conv -> BN -> pooled -> linear classifier, small enough to build in milliseconds."""

    def __init__(self, classes: int = 5, width: int = 4) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, width, 3)
        self.bn = paddle.nn.BatchNorm2D(width)
        self.fc = paddle.nn.Linear(width, classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(self.bn(self.conv(x)).mean(axis=[2, 3]))


def _arrays(model: paddle.nn.Layer) -> dict[str, np.ndarray]:
    return {key: tensor.numpy().copy() for key, tensor in model.state_dict().items()}


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A trained-looking Tiny saved with paddle.save, and its arrays."""
    model = Tiny()
    for tensor in model.state_dict().values():
        tensor.set_value(paddle.rand(tensor.shape) + 0.5)
    path = tmp_path / "tiny.pdparams"
    paddle.save(model.state_dict(), str(path))
    return path, _arrays(model)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("COROLLA_WEIGHTS_DIR", str(folder))
    return folder


def test_reads_what_paddle_save_writes_for_a_layer(saved):
    path, arrays = saved
    state = load_state_dict_file(path)
    assert sorted(state) == sorted(arrays) == ["bn._mean", "bn._variance", "bn.bias", "bn.weight", "conv.bias", "conv.weight", "fc.bias", "fc.weight"]
    for key, array in arrays.items():
        assert state[key].dtype == np.float32
        np.testing.assert_array_equal(state[key], array)


def test_reads_protocol_2_and_nested_tensors(tmp_path):
    model = Tiny()
    paddle.save(model.state_dict(), str(tmp_path / "p2.pdparams"), protocol=2)
    paddle.save({"model": model.state_dict(), "epoch": 3}, str(tmp_path / "bundle.pd"))
    np.testing.assert_array_equal(load_state_dict_file(tmp_path / "p2.pdparams")["fc.weight"], model.fc.weight.numpy())
    bundle = load_state_dict_file(tmp_path / "bundle.pd")
    assert bundle["epoch"] == 3
    np.testing.assert_array_equal(bundle["model"]["conv.weight"], model.conv.weight.numpy())


def test_joins_arrays_that_paddle_save_split(tmp_path):
    whole = np.arange(6, dtype=np.float32).reshape(2, 3)
    flat = whole.reshape(-1)
    sliced = {
        "w@@.0": flat[:4],
        "w@@.1": flat[4:],
        "UnpackBigParamInfor@@": {"w": {"OriginShape": (2, 3), "slices": ["w@@.0", "w@@.1"]}},
    }
    (tmp_path / "big.pdparams").write_bytes(pickle.dumps(sliced, protocol=2))
    state = load_state_dict_file(tmp_path / "big.pdparams")
    assert list(state) == ["w"]
    np.testing.assert_array_equal(state["w"], whole)


def test_optimizer_state_restores_training_exactly(tmp_path):
    """What the engine does on resume: the restored run continues bit for bit."""

    def fresh():
        paddle.seed(0)
        model = paddle.nn.Linear(4, 2)
        schedule = paddle.optimizer.lr.StepDecay(0.1, step_size=1)
        return model, paddle.optimizer.AdamW(parameters=model.parameters(), learning_rate=schedule)

    x = paddle.to_tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    # Optimizer accumulators are keyed by generated names; a fresh name scope per
    # run makes both runs generate the same names, as two processes would.
    with paddle.utils.unique_name.guard():
        model, opt = fresh()
        model(x).mean().backward()
        opt.step()
        opt.clear_grad()
        opt._learning_rate.step()
        paddle.save(model.state_dict(), str(tmp_path / "m.pdparams"))
        paddle.save(opt.state_dict(), str(tmp_path / "m.pdopt"))
        model(x).mean().backward()
        opt.step()
        expected = model.weight.numpy()
    with paddle.utils.unique_name.guard():
        model, opt = fresh()
        model.set_state_dict(load_state_dict_file(tmp_path / "m.pdparams"))
        opt.set_state_dict(load_state_dict_file(tmp_path / "m.pdopt"))
        assert opt.get_lr() == pytest.approx(0.01)
        model(x).mean().backward()
        opt.step()
        np.testing.assert_array_equal(model.weight.numpy(), expected)


class _RunsCode:
    """A pickle payload: unpickling it calls ``function(*args)``."""

    def __init__(self, function, *args):
        self.call = (function, args)

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize(
    "function, forbidden",
    [(os.system, "system"), (eval, "builtins.eval"), (exec, "builtins.exec")],
    ids=["os.system", "eval", "exec"],
)
def test_malicious_pickle_runs_nothing(tmp_path, function, forbidden):
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if function is os.system else f"open({str(marker)!r}, 'w').close()"
    payload = pickle.dumps({"fc.weight": np.ones(2, np.float32), "fc.bias": _RunsCode(function, command)})
    # The payload is live: the ordinary unpickler runs it.
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.pdparams"
    path.write_bytes(payload)
    with pytest.raises(WeightsError) as info:
        load_state_dict_file(path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and forbidden in message and "Nothing from the file was executed" in message


def test_object_arrays_and_non_pickles_are_refused(tmp_path):
    (tmp_path / "objects.pdparams").write_bytes(pickle.dumps({"w": np.array([1, "x"], dtype=object)}))
    with pytest.raises(WeightsError, match="array of Python objects"):
        load_state_dict_file(tmp_path / "objects.pdparams")
    (tmp_path / "text.pdparams").write_text("not a pickle")
    with pytest.raises(WeightsError, match="text.pdparams is not a paddle.save file"):
        load_state_dict_file(tmp_path / "text.pdparams")
    (tmp_path / "list.pdparams").write_bytes(pickle.dumps([np.ones(2)]))
    with pytest.raises(WeightsError, match="holds a list; expected a dict"):
        load_state_dict_file(tmp_path / "list.pdparams")
    with pytest.raises(WeightsError, match="does not exist"):
        load_state_dict_file(tmp_path / "absent.pdparams")


def test_loads_a_local_file_with_or_without_its_suffix(saved):
    path, arrays = saved
    for given in (path, str(path.with_suffix(""))):
        model = load_pretrained(Tiny(), given, name="Tiny", table={})
        for key, array in _arrays(model).items():
            np.testing.assert_array_equal(array, arrays[key], err_msg=key)


def test_values_are_cast_to_the_model_dtype(saved):
    path, arrays = saved
    model = Tiny()
    model.to(dtype="float16")
    load_pretrained(model, path, name="Tiny", table={})
    assert model.conv.weight.dtype == paddle.float16
    np.testing.assert_allclose(model.conv.weight.numpy().astype(np.float32), arrays["conv.weight"], rtol=1e-3)


def test_false_loads_nothing_and_bad_values_are_errors(saved):
    model = Tiny()
    before = _arrays(model)
    assert load_pretrained(model, False, name="Tiny", table={}) is model
    assert all(np.array_equal(before[k], v) for k, v in _arrays(model).items())
    with pytest.raises(ComponentArgumentError, match="pretrained must be False, True, a file path or an http"):
        load_pretrained(model, 3, name="Tiny", table={})
    with pytest.raises(WeightsError, match=r"not found: tried .*nowhere and .*nowhere\.pdparams"):
        load_pretrained(model, "/nowhere", name="Tiny", table={})


def test_other_class_num_loads_all_but_the_classifier(saved, caplog):
    path, arrays = saved
    model = Tiny(classes=3)
    fresh_head = model.fc.weight.numpy().copy()
    with caplog.at_level(logging.WARNING, logger="corolla.engine.weights"):
        load_pretrained(model, path, name="Tiny", table={})
    loaded = _arrays(model)
    for key in ("conv.weight", "conv.bias", "bn.weight", "bn._mean", "bn._variance"):
        np.testing.assert_array_equal(loaded[key], arrays[key])
    np.testing.assert_array_equal(loaded["fc.weight"], fresh_head)
    [record] = caplog.records
    assert "fc.weight, fc.bias" in record.getMessage() and "5 classes, the model 3" in record.getMessage()


def test_a_frozen_classifier_of_another_class_num_is_an_error_not_left_random(saved):
    path, _ = saved
    model = Tiny(classes=3)
    for param in model.fc.parameters():
        param.trainable = False  # as a frozen distillation teacher's (Global.pretrained_model loads it this way)
    before = _arrays(model)
    with pytest.raises(WeightsError, match=r"has 5 classes and the model \(Tiny\) 3, but its classifier \(fc.weight, fc.bias\) is frozen: "
                                           r"it would stay randomly initialised. Give the frozen model class_num=5"):
        load_pretrained(model, path, name="Tiny", table={})
    assert all(np.array_equal(before[k], v) for k, v in _arrays(model).items())


def test_shape_mismatch_and_missing_keys_are_errors_that_list_them(saved, tmp_path):
    path, _ = saved
    model = Tiny(width=6)
    before = _arrays(model)
    with pytest.raises(WeightsError) as info:
        load_pretrained(model, path, name="Tiny", table={})
    message = str(info.value)
    assert "does not fit Tiny" in message
    assert "conv.weight [4, 3, 3, 3] vs [6, 3, 3, 3]" in message and "bn._mean [4] vs [6]" in message
    # nothing was half-loaded
    assert all(np.array_equal(before[k], v) for k, v in _arrays(model).items())

    partial = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith("bn.")}
    paddle.save(partial, str(tmp_path / "partial.pdparams"))
    with pytest.raises(WeightsError, match=r"4 of the model's 8 entries are missing from the file: bn.weight, bn.bias, bn._mean, bn._variance"):
        load_pretrained(Tiny(), tmp_path / "partial.pdparams", name="Tiny", table={})


def test_keys_the_model_lacks_are_logged_and_ignored(saved, tmp_path, caplog):
    path, arrays = saved
    state = load_state_dict_file(path)
    state["extra.weight"] = np.ones(3, np.float32)
    paddle.save(state, str(tmp_path / "extra.pdparams"))
    with caplog.at_level(logging.WARNING, logger="corolla.engine.weights"):
        model = load_pretrained(Tiny(), tmp_path / "extra.pdparams", name="Tiny", table={})
    np.testing.assert_array_equal(model.fc.weight.numpy(), arrays["fc.weight"])
    assert "ignored 1 keys" in caplog.text and "extra.weight" in caplog.text


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COROLLA_WEIGHTS_DIR", str(tmp_path / "w"))
    assert weights_dir() == tmp_path / "w"
    assert cache_path("https://host/a/b/ResNet50_vd_pretrained.pdparams") == tmp_path / "w" / "ResNet50_vd_pretrained.pdparams"
    monkeypatch.delenv("COROLLA_WEIGHTS_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights_dir() == tmp_path / "home" / ".cache" / "corolla" / "weights"


def test_true_uses_the_table_and_use_ssld_the_ssld_file(saved, cache):
    path, arrays = saved
    table = {
        "Tiny": PretrainedWeights("https://example.invalid/Tiny_pretrained.pdparams", 0.5),
        "Tiny_ssld": PretrainedWeights("https://example.invalid/Tiny_ssld_pretrained.pdparams", 0.6),
    }
    cache.mkdir()
    (cache / "Tiny_ssld_pretrained.pdparams").write_bytes(path.read_bytes())
    model = load_pretrained(Tiny(), True, name="Tiny", table=table, use_ssld=True)
    np.testing.assert_array_equal(model.fc.weight.numpy(), arrays["fc.weight"])
    table["Tiny50"] = table["Tiny50_ssld"] = table["Tiny"]
    with pytest.raises(ComponentArgumentError, match=r"publishes no SSLD weights .*\(published for it: Tiny5\);"):
        load_pretrained(Tiny(), True, name="Tiny5", table={"Tiny5": table["Tiny"]} | table, use_ssld=True)
    with pytest.raises(ComponentArgumentError, match=r"publishes no pretrained weights .*\(published for it: none\);"):
        load_pretrained(Tiny(), True, name="Tiny3", table=table)


def test_offline_error_names_the_url_and_the_cache_path(cache, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    url = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/Tiny_pretrained.pdparams"
    with pytest.raises(WeightsError) as info:
        load_pretrained(Tiny(), True, name="Tiny", table={"Tiny": PretrainedWeights(url, 0.5)})
    message = str(info.value)
    assert url in message and str(cache / "Tiny_pretrained.pdparams") in message
    assert "Temporary failure in name resolution" in message and "COROLLA_WEIGHTS_DIR" in message
    assert not list(cache.glob("*")), "no partial file is left behind"


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server over a folder (no network); yields (folder, base URL, request paths)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    thread.join()


def test_url_downloads_once_into_the_cache(saved, cache, http_folder):
    path, arrays = saved
    folder, base, requests = http_folder
    (folder / "Tiny_pretrained.pdparams").write_bytes(path.read_bytes())
    url = f"{base}/Tiny_pretrained.pdparams"
    for _ in range(2):
        model = load_pretrained(Tiny(), url, name="Tiny", table={})
        np.testing.assert_array_equal(model.bn._variance.numpy(), arrays["bn._variance"])
    assert requests == ["/Tiny_pretrained.pdparams"]
    assert sorted(p.name for p in cache.iterdir()) == ["Tiny_pretrained.pdparams"]
    with pytest.raises(WeightsError, match=r"could not download .*/Missing\.pdparams \(HTTP 404 File not found\)"):
        load_pretrained(Tiny(), f"{base}/Missing.pdparams", name="Tiny", table={})


def test_describe_weights_renders_the_table_rows():
    table = {
        "Net": PretrainedWeights("https://x/Net_pretrained.pdparams", 0.7912),
        "Net_ssld": PretrainedWeights("https://x/Net_ssld_pretrained.pdparams", 0.83, 288),
        "Other": PretrainedWeights("https://x/Other.pdparams", 0.5),
    }
    text = describe_weights("Net", table)
    assert "Net       top-1  79.12%  input 224  https://x/Net_pretrained.pdparams" in text
    assert "Net_ssld  top-1  83.00%  input 288  https://x/Net_ssld_pretrained.pdparams" in text
    assert "Other" not in text
    assert "none published" in describe_weights("Nothing", table)
