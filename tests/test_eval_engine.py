"""Evaluation through Paddle Inference (``Global.eval_engine``): the same metrics as dygraph,
in ``corolla eval`` and during training; when ``auto`` traces; falling back to dygraph."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

import corolla
import engine_support
from corolla.cli.main import main
from corolla.config.planner import read_plan
from corolla.engine import eval_engine
from corolla.engine.eval_engine import EvalEngine
from corolla.engine.evaluate import evaluate_config
from corolla.engine.runtimes import PaddleRuntime
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset

# a fall-back to dygraph warns: here it fails the test, unless the test expects it
pytestmark = pytest.mark.filterwarnings("error:Global.eval_engine:UserWarning")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=8, image_size=40, seed=13)


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


def _train(config: dict, registry, engine: str):
    config = copy.deepcopy(config)
    config["Global"]["eval_engine"] = engine
    return train(read_plan(config, registry), distributed=False)


def _evals(run) -> list[dict]:
    records = [json.loads(line) for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["event"] == "eval"]


@pytest.fixture(scope="module")
def runs(data, registry, tmp_path_factory):
    """The same two epochs with evaluation in dygraph and through Paddle Inference (counting
    the conversions to a static graph and the saves)."""
    calls = {"traced": 0, "saved": 0}
    real_traced, real_save = eval_engine.traced, paddle.jit.save

    def count(name, real):
        return lambda *a, **kw: (calls.__setitem__(name, calls[name] + 1), real(*a, **kw))[1]

    eval_engine.traced, paddle.jit.save = count("traced", real_traced), count("saved", real_save)
    try:
        out = tmp_path_factory.mktemp("runs")
        return {engine: _train(engine_support.tiny_config(data, out / engine, epochs=2), registry, engine)
                for engine in ("dygraph", "inference")}, calls
    finally:
        eval_engine.traced, paddle.jit.save = real_traced, real_save


def test_training_evaluates_through_paddle_inference_with_dygraphs_metrics_and_weights(runs):
    (runs, calls) = runs
    assert calls == {"traced": 1, "saved": 2}  # converted once, saved with the new weights at each evaluation
    dygraph, inference = _evals(runs["dygraph"]), _evals(runs["inference"])
    assert [r["epoch"] for r in inference] == [r["epoch"] for r in dygraph] == [1, 2]
    for ours, theirs in zip(inference, dygraph):
        for key in ("loss", "top1", "top2"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5), key
    # tracing leaves the model alone: training goes on exactly as with dygraph evaluation
    weights = [load_state_dict_file(runs[e].output_dir / "latest.pdparams") for e in ("dygraph", "inference")]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)


def _eval_config(runs, data, engine: str) -> dict:
    config = engine_support.tiny_config(data, runs["dygraph"].output_dir.parent, epochs=1)
    config["Global"]["pretrained_model"] = str(runs["dygraph"].output_dir / "best_model")
    config["Global"]["eval_engine"] = engine
    return config


def test_corolla_eval_through_paddle_inference_gives_dygraphs_metrics(runs, data, registry, tmp_path, fake_dist, capsys):
    runs, _ = runs
    results = {e: evaluate_config(read_plan(_eval_config(runs, data, e), registry)) for e in ("dygraph", "inference")}
    assert results["inference"].keys() == results["dygraph"].keys()
    for key in ("loss", "CELoss", "top1", "top2"):
        assert results["inference"][key] == pytest.approx(results["dygraph"][key], rel=1e-5), key

    fake_dist("corolla-engine-test", {"engine_support": Path(engine_support.__file__).read_text()})
    config_file = tmp_path / "eval.yaml"
    config_file.write_text(yaml.safe_dump(_eval_config(runs, data, "auto")))
    assert main(["eval", "-c", str(config_file), "--eval-engine", "inference"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"[Eval] CELoss: {results['dygraph']['CELoss']:.4f}, loss: ") and "images/s: " in line


def test_a_distillation_models_named_outputs_go_through_the_traced_model(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=1)
    config["Arch"] = {"name": "DistillationModel", "class_num": data.num_classes, "infer_model_name": "Student",
                      "models": [{"Teacher": {"name": "TinyNet", "width": 16}}, {"Student": {"name": "TinyNet", "width": 4}}]}
    config["Loss"]["Eval"] = [{"DistillationDMLLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}}]
    config["Metric"]["Eval"] = [{"DistillationTopkAcc": {"model_key": "Teacher", "topk": [1, 2]}}]
    results = {}
    for engine in ("dygraph", "inference"):
        config["Global"]["eval_engine"] = engine
        results[engine] = evaluate_config(read_plan(copy.deepcopy(config), registry))
    for key in ("loss", "top1", "top2"):
        assert results["inference"][key] == pytest.approx(results["dygraph"][key], rel=1e-5), key


def test_a_model_that_cannot_be_traced_or_disagrees_is_evaluated_in_dygraph(runs, data, registry, monkeypatch):
    runs, _ = runs
    expected = evaluate_config(read_plan(_eval_config(runs, data, "dygraph"), registry))

    def broken(*args):
        raise RuntimeError("some op has no static kernel")

    monkeypatch.setattr(eval_engine, "traced", broken)
    with pytest.warns(UserWarning, match=r"Global.eval_engine: the model could not be traced for Paddle Inference "
                                         r"\(RuntimeError: some op has no static kernel\); evaluating in dygraph"):
        results = evaluate_config(read_plan(_eval_config(runs, data, "inference"), registry))
    assert results["top1"] == expected["top1"] and results["loss"] == pytest.approx(expected["loss"], rel=1e-6)

    monkeypatch.undo()
    real_run = PaddleRuntime.run
    monkeypatch.setattr(PaddleRuntime, "run", lambda self, images: [a * 2 for a in real_run(self, images)])
    with pytest.warns(UserWarning, match=r"the traced model's output logits differs from dygraph's by up to"):
        results = evaluate_config(read_plan(_eval_config(runs, data, "inference"), registry))
    assert results["top1"] == expected["top1"] and results["loss"] == pytest.approx(expected["loss"], rel=1e-6)


def test_auto_traces_where_it_pays_off_and_then_goes_by_what_it_measured():
    job = EvalEngine("auto", device="cpu", threads=1)
    assert not job.worth_tracing(0.001, 100)  # 0.1 s of dygraph left: a trace costs more
    assert job.worth_tracing(0.05, 1000)  # 50 s left
    assert not job.worth_tracing(0.05, None) and not job.worth_tracing(0.05, 0)
    job.trace_s, job.traced_s = 2.0, 0.01  # measured by an earlier evaluation of the job
    assert job.worth_tracing(0.05, 60) and not job.worth_tracing(0.05, 40)  # 60 * 0.04 > 2 > 40 * 0.04
    assert EvalEngine("inference", device="cpu", threads=1).worth_tracing(0.0, 1)
    assert not EvalEngine("dygraph", device="cpu", threads=1).worth_tracing(1.0, 10**6)
    assert not EvalEngine("inference", device="gpu", threads=1).worth_tracing(1.0, 10**6)  # oneDNN is for CPUs
