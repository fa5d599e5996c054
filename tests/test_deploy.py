"""Deployment: ``export --format onnx|paddle|all`` and ``predict --backend onnxruntime|paddle``
on a trained TinyNet; what a failed or disagreeing ONNX conversion and a missing extra do."""
from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

import corolla
import engine_support
from corolla.cli.main import main
from corolla.config.planner import read_plan
from corolla.engine.export import export
from corolla.engine.onnx_convert import ConversionError
from corolla.engine.predict import Predictor, predict
from corolla.engine.runtimes import MissingExtraError, OnnxRuntime
from corolla.engine.train import train
from corolla.plugin.errors import ConfigError, DataError
from corolla.testing.datasets import make_list_dataset

pytest.importorskip("paddle2onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


class ShuffledNet(engine_support.TinyNet):
    """TinyNet with Paddle's ``channel_shuffle`` op, which paddle2onnx 2.1 cannot convert."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(self.features[6:](paddle.nn.functional.channel_shuffle(self.features[:6](x), 2)))


def corolla_backbones() -> dict:
    return {"ShuffledNet": lambda class_num=10: ShuffledNet(class_num)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=6, image_size=40, seed=11)


@pytest.fixture(scope="module")
def registry():
    this = sys.modules[__name__]  # its corolla_backbones gives ShuffledNet
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support), ("test_deploy", this)])


@pytest.fixture(scope="module")
def trained(data, registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    config = engine_support.tiny_config(data, out, epochs=1)
    run = train(read_plan(copy.deepcopy(config), registry), distributed=False)
    config["Global"]["pretrained_model"] = str(run.output_dir / "best_model")
    return config


def _config(trained: dict, folder: Path) -> dict:
    config = copy.deepcopy(trained)
    config["Global"]["save_inference_dir"] = str(folder)
    return config


def _names(folder: Path) -> list[str]:
    """The files of an export, without the ``.pdiparams.info`` that Paddle 2.6 writes beside the weights."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".pdiparams.info"))


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_export_all_then_predict_with_either_backend_gives_the_same_lines(trained, data, tmp_path, fake_dist, capsys):
    fake_dist("corolla-engine-test", {"engine_support": Path(engine_support.__file__).read_text()})
    config = _config(trained, tmp_path / "model")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    assert main(["export", "-c", str(config_file), "--format", "all"]) == 0
    assert "inference model (all) written to" in capsys.readouterr().out
    program = "inference.json" if int(paddle.__version__.split(".")[0]) >= 3 else "inference.pdmodel"
    assert _names(tmp_path / "model") == sorted([program, "inference.pdiparams", "inference.onnx", "inference.yml", "label_list.txt"])
    record = yaml.safe_load((tmp_path / "model" / "inference.yml").read_text())["Global"]
    assert record["formats"] == ["paddle", "onnx"] and record["onnx_opset"] >= 13

    outputs = {}
    for backend in ("paddle", "onnxruntime"):
        json_file = tmp_path / f"{backend}.jsonl"
        assert main(["predict", "-c", str(config_file), "--backend", backend, "--json", str(json_file)]) == 0
        outputs[backend] = (capsys.readouterr().out.splitlines(), [json.loads(l) for l in json_file.read_text().splitlines()])
    (paddle_lines, paddle_json), (onnx_lines, onnx_json) = outputs["paddle"], outputs["onnxruntime"]
    assert len(onnx_lines) == len(paddle_lines) == 6 and onnx_lines == paddle_lines  # two decimals print alike
    assert [r["class_ids"] for r in onnx_json] == [r["class_ids"] for r in paddle_json]
    for ours, theirs in zip(onnx_json, paddle_json):
        np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=1e-4)


def test_an_onnx_only_export_holds_no_paddle_program_and_each_backend_names_what_is_missing(trained, registry, tmp_path):
    folder = export(read_plan(_config(trained, tmp_path / "onnx"), registry), formats=["onnx"])
    assert _names(folder) == ["inference.onnx", "inference.yml", "label_list.txt"]
    assert len(predict(read_plan(_config(trained, folder), registry), backend="onnxruntime", echo=lambda line: None)) == 6
    with pytest.raises(DataError, match=r"onnx/inference.json not found: .* holds no Paddle inference model .*--backend onnxruntime"):
        Predictor(folder, registry, backend="paddle")
    paddle_only = export(read_plan(_config(trained, tmp_path / "paddle"), registry))
    with pytest.raises(DataError, match=r"paddle/inference.onnx not found: .* holds no ONNX model .*--format onnx or all"):
        Predictor(paddle_only, registry, backend="onnxruntime")
    with pytest.raises(ConfigError, match="--format: expected paddle, onnx or all, found tflite"):
        export(read_plan(_config(trained, tmp_path / "x"), registry), formats=["tflite"])
    # an export whose recorded preprocessing was edited afterwards: the error says what to do, not ONNX Runtime's trace
    with pytest.raises(DataError, match=r"onnx/inference.onnx takes images of shape \[3, 32, 32\], but the preprocessing "
                                        r"made \[3, 24, 24\]: export again with Global.image_shape"):
        OnnxRuntime(folder).run(np.zeros([2, 3, 24, 24], np.float32))


def test_an_operator_paddle2onnx_cannot_convert_is_an_error_and_the_previous_export_stays(trained, registry, tmp_path):
    config = _config(trained, tmp_path / "model")
    folder = export(read_plan(config, registry), formats=["all"])
    before = _tree(folder)
    config["Arch"] = {"name": "ShuffledNet", "class_num": 3}
    config["Global"].pop("pretrained_model")
    # paddle2onnx aborts its process on the op: the child dies, the export says why
    with pytest.raises(ConversionError, match=r"paddle2onnx could not convert .*inference.(json|pdmodel) to ONNX \(exit status -?\d+\): "
                                              r".*unsupported operators.*--format paddle' does not need it"):
        export(read_plan(config, registry), formats=["onnx"])
    assert _tree(folder) == before and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_onnx_model_that_disagrees_with_paddle_is_not_exported(trained, registry, tmp_path, monkeypatch):
    config = _config(trained, tmp_path / "model")
    real_run = OnnxRuntime.run
    monkeypatch.setattr(OnnxRuntime, "run", lambda self, images: [a + 0.01 for a in real_run(self, images)])
    with pytest.raises(ConversionError, match=r"the ONNX model's output \(2, 3\) differs from Paddle Inference's \(2, 3\) "
                                              r"by up to 0.01 .*it was not exported"):
        export(read_plan(config, registry), formats=["all"])
    assert not any(tmp_path.iterdir())


def test_a_missing_onnx_extra_is_named_before_anything_is_built(trained, registry, tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "paddle2onnx" else real_find_spec(name, *a))
    with pytest.raises(MissingExtraError, match=r"corolla export --format onnx needs paddle2onnx, which is not installed; "
                                                r"install the onnx extra: pip install 'corolla\[onnx\]'"):
        export(read_plan(_config(trained, tmp_path / "model"), registry), formats=["onnx"])
    assert not any(tmp_path.iterdir())


def test_a_conversion_child_that_fails_without_a_message_still_says_so(trained, registry, tmp_path, monkeypatch):
    real_popen = subprocess.Popen
    killed = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    monkeypatch.setattr("corolla.engine.onnx_convert.subprocess.Popen", lambda command, **kw: real_popen(killed, **kw))
    with pytest.raises(ConversionError, match=r"\(exit status -9\): no output"):
        export(read_plan(_config(trained, tmp_path / "model"), registry), formats=["onnx"])
    assert not any(tmp_path.iterdir())
