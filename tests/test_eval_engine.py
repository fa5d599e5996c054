"""Evaluation through an inference engine (``Global.eval_engine``): Paddle Inference and ONNX
Runtime give the same metrics as dygraph, in ``corolla eval`` and during training; which engine
``auto`` picks and when it traces; falling back to Paddle Inference or dygraph."""
from __future__ import annotations

import copy
import json
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
from corolla.engine import eval_engine
from corolla.engine import evaluate as evaluate_module
from corolla.engine.eval_engine import EvalEngine
from corolla.engine.evaluate import evaluate_config
from corolla.engine.files import write_checkpoint
from corolla.engine.graph_cache import GRAPH_CACHE_ENV, cache_root, graph_key
from corolla.engine.onnx_convert import Conversion, ConversionError
from corolla.engine.runtimes import MissingExtraError, OnnxRuntime, PaddleRuntime
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset

# a fall-back to dygraph warns: here it fails the test, unless the test expects it
pytestmark = pytest.mark.filterwarnings("error:Global.eval_engine:UserWarning")


@pytest.fixture(autouse=True)
def graph_cache(tmp_path, monkeypatch) -> Path:
    """An empty graph cache for each test: each converts afresh, unless it restores what it kept itself."""
    folder = tmp_path / "graphs"
    monkeypatch.setenv(GRAPH_CACHE_ENV, str(folder))
    return folder


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


@pytest.fixture(scope="module")
def expected(runs, data, registry):
    """``corolla eval`` of the trained model in dygraph: the metrics every engine must give."""
    return evaluate_config(read_plan(_eval_config(runs[0], data, "dygraph"), registry))


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


def test_a_model_that_cannot_be_traced_or_disagrees_is_evaluated_in_dygraph(
        runs, data, registry, expected, monkeypatch):
    runs, _ = runs

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
    assert EvalEngine("onnxruntime", device="cpu", threads=1).worth_tracing(0.0, 1)
    assert not EvalEngine("dygraph", device="cpu", threads=1).worth_tracing(1.0, 10**6)
    assert not EvalEngine("inference", device="gpu", threads=1).worth_tracing(1.0, 10**6)  # oneDNN is for CPUs


needs_onnx = pytest.mark.skipif(not eval_engine.onnx_installed(), reason="the onnx extra is not installed")


def test_auto_picks_onnx_runtime_where_the_onnx_extra_is_installed_else_paddle_inference(monkeypatch):
    assert EvalEngine("inference", device="cpu", threads=2).backend == "paddle"
    monkeypatch.setattr(eval_engine, "onnx_installed", lambda: False)
    assert EvalEngine("auto", device="cpu", threads=2).backend == "paddle"
    monkeypatch.setattr(eval_engine, "onnx_installed", lambda: True)
    assert EvalEngine("auto", device="cpu", threads=2).backend == "onnxruntime"


def test_onnxruntime_without_the_onnx_extra_is_an_error_saying_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # find_spec then says: not installed
    with pytest.raises(MissingExtraError, match=r"Global.eval_engine: onnxruntime needs onnxruntime.*pip install "
                                                r"'corolla\[onnx\]'"):
        EvalEngine("onnxruntime", device="cpu", threads=1)
    assert EvalEngine("onnxruntime", device="gpu", threads=1).engine == "dygraph"  # not asked for on GPU


@needs_onnx
def test_corolla_eval_through_onnx_runtime_gives_dygraphs_metrics_and_leaves_the_loader_room(
        runs, data, registry, expected, monkeypatch):
    runs, _ = runs
    options = []
    real_init = OnnxRuntime.__init__

    def opened(self, folder, **kwargs):
        options.append(kwargs)
        real_init(self, folder, **kwargs)

    monkeypatch.setattr(OnnxRuntime, "__init__", opened)
    monkeypatch.setattr(evaluate_module, "cpu_thread_count", lambda processes: 2)
    results = evaluate_config(read_plan(_eval_config(runs, data, "onnxruntime"), registry))
    assert options == [{"threads": 2, "spin_wait": False}]  # its idle threads leave the cores to the loader
    for key in ("loss", "CELoss", "top1", "top2"):
        assert results[key] == pytest.approx(expected[key], rel=1e-5), key


@needs_onnx
def test_a_model_onnx_cannot_take_goes_through_paddle_inference_under_auto_and_dygraph_when_asked_for(
        runs, data, registry, expected, monkeypatch):
    runs, _ = runs

    def unconvertible(self, folder, **kwargs):
        self.close()
        raise ConversionError(f"paddle2onnx could not convert {folder}: no converter for op some_op")

    monkeypatch.setattr(Conversion, "run", unconvertible)
    monkeypatch.setattr(eval_engine, "TRACE_GUESS_S", 0.0)  # auto traces even this tiny evaluation
    opened = []
    real_init = PaddleRuntime.__init__
    monkeypatch.setattr(PaddleRuntime, "__init__", lambda self, folder, **kw: (opened.append(folder),
                                                                               real_init(self, folder, **kw))[1])
    with pytest.warns(UserWarning, match=r"Global.eval_engine: auto: ONNX Runtime cannot run this model "
                                         r"\(paddle2onnx could not convert .*no converter for op some_op\); "
                                         r"evaluating through Paddle Inference"):
        results = evaluate_config(read_plan(_eval_config(runs, data, "auto"), registry))
    assert len(opened) == 1
    assert results["top1"] == expected["top1"] and results["loss"] == pytest.approx(expected["loss"], rel=1e-5)

    with pytest.warns(UserWarning, match=r"the model could not be traced for ONNX Runtime \(ConversionError: "
                                         r"paddle2onnx could not convert"):
        results = evaluate_config(read_plan(_eval_config(runs, data, "onnxruntime"), registry))
    assert len(opened) == 1
    assert results["top1"] == expected["top1"] and results["loss"] == pytest.approx(expected["loss"], rel=1e-6)


@needs_onnx
def test_a_conversion_started_for_a_model_that_then_fails_to_trace_is_stopped(runs, data, registry, monkeypatch):
    runs, _ = runs
    started = []
    real_init = Conversion.__init__
    monkeypatch.setattr(Conversion, "__init__", lambda self: (started.append(self), real_init(self))[1])

    def broken(*args):
        raise RuntimeError("some op has no static kernel")

    monkeypatch.setattr(eval_engine, "traced", broken)
    with pytest.warns(UserWarning, match=r"could not be traced for ONNX Runtime \(RuntimeError: some op"):
        evaluate_config(read_plan(_eval_config(runs, data, "onnxruntime"), registry))
    assert len(started) == 1 and started[0]._child.poll() is not None  # the waiting child is gone


@needs_onnx
def test_a_later_evaluation_of_the_same_network_restores_its_cached_graph_with_its_own_weights(
        runs, data, registry, expected, graph_cache, tmp_path, monkeypatch):
    runs, _ = runs
    # first, other weights of the same network: its graph is converted and kept without them
    weights = load_state_dict_file(runs["dygraph"].output_dir / "best_model.pdparams")
    write_checkpoint(tmp_path / "other", {".pdparams": {k: v * 0.5 for k, v in weights.items()}})
    config = _eval_config(runs, data, "onnxruntime")
    other = evaluate_config(read_plan({**config, "Global": {**config["Global"], "pretrained_model": str(tmp_path / "other")}},
                                      registry))
    assert other["loss"] != pytest.approx(expected["loss"], rel=1e-3)
    (entry,) = graph_cache.iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["graph.onnx", "layout.json"]
    layout = json.loads((entry / "layout.json").read_text())
    assert sorted(name for name, _, _ in layout) == sorted(weights)  # every weight, by its structured name
    assert (entry / "graph.onnx").stat().st_size < sum(size for _, _, size in layout)  # the weights are not in it

    # then the trained weights: no trace, no conversion, dygraph's metrics
    def not_again(*args, **kwargs):
        raise AssertionError("traced or converted although the graph is cached")

    monkeypatch.setattr(eval_engine, "traced", not_again)
    monkeypatch.setattr(Conversion, "__init__", not_again)
    results = evaluate_config(read_plan(config, registry))
    for key in ("loss", "CELoss", "top1", "top2"):
        assert results[key] == pytest.approx(expected[key], rel=1e-5), key

    # an entry that gives other outputs than dygraph (here: two weights swapped) is replaced by a fresh trace
    monkeypatch.undo()
    monkeypatch.setenv(GRAPH_CACHE_ENV, str(graph_cache))
    a, b = next((i, j) for i in range(len(layout)) for j in range(i) if layout[i][2] == layout[j][2])
    swapped = copy.deepcopy(layout)
    swapped[a][1], swapped[b][1] = layout[b][1], layout[a][1]
    (entry / "layout.json").write_text(json.dumps(swapped))
    traces = []
    real_traced = eval_engine.traced
    monkeypatch.setattr(eval_engine, "traced", lambda *a: (traces.append(a), real_traced(*a))[1])
    results = evaluate_config(read_plan(config, registry))
    assert len(traces) == 1 and results["top1"] == expected["top1"]
    assert results["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert json.loads((entry / "layout.json").read_text()) == layout  # kept afresh


@needs_onnx
def test_training_through_onnx_runtime_converts_its_graph_once(data, registry, graph_cache, tmp_path, monkeypatch):
    saves = []
    real_save = paddle.jit.save
    monkeypatch.setattr(paddle.jit, "save", lambda *a, **kw: (saves.append(a), real_save(*a, **kw))[1])
    run = _train(engine_support.tiny_config(data, tmp_path / "run", epochs=2), registry, "onnxruntime")
    assert len(saves) == 1  # the second evaluation restored the cached graph with the new weights
    evals = _evals(run)
    assert [r["epoch"] for r in evals] == [1, 2] and evals[0]["loss"] != evals[1]["loss"]
    assert len(list(graph_cache.iterdir())) == 1

    # and `corolla eval` of the trained model afterwards restores the same graph
    config = engine_support.tiny_config(data, tmp_path / "run", epochs=2)
    config["Global"].update(pretrained_model=str(run.output_dir / "latest"), eval_engine="onnxruntime")
    results = evaluate_config(read_plan(config, registry))
    assert len(saves) == 1 and len(list(graph_cache.iterdir())) == 1
    assert results["loss"] == pytest.approx(evals[-1]["loss"], rel=1e-5)


def test_the_graph_key_names_the_network_not_its_weights_or_parameter_names(monkeypatch):
    def key(net, shape=(3, 32, 32)):
        return graph_key(net, [()], shape)

    first, second = engine_support.TinyNet(3, 8), engine_support.TinyNet(3, 8)
    assert first.fc.weight.name != second.fc.weight.name  # Paddle numbers each new parameter
    second.fc.weight.set_value(second.fc.weight * 2)
    assert key(first) == key(second)
    assert key(first) != key(first, (3, 64, 64)) and key(first) != graph_key(first, [("logits",)], (3, 32, 32))
    assert key(first) != key(engine_support.TinyNet(4, 8)) and key(first) != key(engine_support.TinyNet(3, 16))
    assert key(first) != key(engine_support.TinyNet(3, 8, dropout=0.5))  # a setting that no shape shows
    second.scale = 2.0  # a plain setting the forward pass might read
    assert key(first) != key(second)

    assert EvalEngine("onnxruntime" if eval_engine.onnx_installed() else "inference", device="cpu",
                      threads=1).graphs is not None or not eval_engine.onnx_installed()
    monkeypatch.setenv(GRAPH_CACHE_ENV, "off")
    assert cache_root() is None and EvalEngine("auto", device="cpu", threads=1).graphs is None
    assert EvalEngine("inference", device="cpu", threads=1).graphs is None  # Paddle Inference traces each job


@needs_onnx
def test_a_graph_cache_that_cannot_be_written_warns_and_the_evaluation_goes_on(
        runs, data, registry, expected, tmp_path, monkeypatch):
    runs, _ = runs
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv(GRAPH_CACHE_ENV, str(blocked / "graphs"))
    with pytest.warns(UserWarning, match=r"graph cache: cannot write to .*not-a-folder/graphs .*later evaluations "
                                         r"trace again \(set COROLLA_GRAPH_CACHE to a writable folder, or to off\)"):
        results = evaluate_config(read_plan(_eval_config(runs, data, "onnxruntime"), registry))
    assert results["top1"] == expected["top1"] and results["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert blocked.read_text() == "a file where the cache folder should be"
