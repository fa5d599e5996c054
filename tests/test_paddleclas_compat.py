"""What PaddleClas configs say that corolla accepts as PaddleClas does (issue 12): keys PaddleClas
ignores (AdamW's ``clip_grad``, DistillationModel's ``use_ssld``) are ignored with one warning
each; ``Global.device: gpu`` on a CPU-only Paddle runs on the CPU with one warning, in every
verb; ``DistillationPostProcess`` goes from the config through export to predict."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import paddle
import pytest
import yaml

import corolla
import engine_support
from corolla.config.planner import read_plan
from corolla.data.placement import resolve_device, setup_environment
from corolla.engine.export import export
from corolla.engine.inference import infer
from corolla.engine.predict import Predictor, predict
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset

GPU_FALLBACK = "Global.device: 'gpu', but this Paddle build has no CUDA support: running on the CPU"
cpu_only = pytest.mark.skipif(paddle.device.is_compiled_with_cuda(), reason="this Paddle has CUDA: gpu means the GPU")


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=6, image_size=36, seed=4)


def messages(record) -> list[str]:
    return [str(w.message) for w in record]


def test_adamw_ignores_clip_grad_with_one_warning(registry):
    model = paddle.nn.Linear(2, 2)
    with pytest.warns(UserWarning) as record:
        registry.build("optimizer", "AdamW", {"model": model, "learning_rate": 0.1, "clip_grad": 5.0})
    assert [m for m in messages(record) if "clip_grad" in m] == [
        "Optimizer.clip_grad: key not used by PaddleClas's AdamW nor by corolla, ignored (found 5.0; "
        "to clip gradients set clip_norm or clip_global_norm)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # null, or PaddleClas's string "None": nothing to ignore
        for value in (None, "None"):
            optimizer = registry.build("optimizer", "AdamW", {"model": model, "learning_rate": 0.1, "clip_grad": value})
    assert optimizer._grad_clip is None


def test_distillation_model_ignores_use_ssld_with_one_warning(registry):
    arch = {"models": [{"Teacher": {"name": "TinyNet"}}, {"Student": {"name": "TinyNet"}}], "use_ssld": True}
    with pytest.warns(UserWarning) as record:
        model = registry.build("backbone", "DistillationModel", arch, key_path="Arch")
    assert len([m for m in messages(record) if m.startswith("Arch.use_ssld: key not used")]) == 1
    assert model.infer_model_name == "Student"


@cpu_only
def test_gpu_runs_on_the_cpu_with_one_warning():
    with pytest.warns(UserWarning, match=GPU_FALLBACK) as record:
        assert resolve_device("gpu") == "cpu"
    assert len(record) == 1
    with pytest.warns(UserWarning, match=GPU_FALLBACK):
        env = setup_environment("gpu", 3, distributed=False)
    assert env.device == "cpu" and paddle.device.get_device() == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_device("cpu") == "cpu"


def distillation_config(data, out) -> dict:
    config = engine_support.tiny_config(data, out, epochs=1, batch=6)
    config["Arch"] = {"name": "DistillationModel", "class_num": data.num_classes, "freeze_params_list": [True, False],
                      "models": [{"Teacher": {"name": "TinyNet", "width": 4}}, {"Student": {"name": "TinyNet"}}]}
    config["Loss"] = {"Train": [{"DistillationCELoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}}],
                      "Eval": [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}}]}
    config["Metric"] = {"Eval": [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 2]}}]}
    config["Infer"]["PostProcess"] = {"name": "DistillationPostProcess", "func": "Topk", "topk": 2,
                                      "class_id_map_file": str(data.label_list)}
    config["Global"]["callbacks"] = [{"StopAfterSteps": {"steps": 1}}]
    return config


@cpu_only
def test_distillation_post_process_from_config_through_export_to_predict(data, registry, tmp_path):
    """PaddleClas's quick_start R50_vd_distill_MV3 config names it; the student's scores are
    post-processed by ``func`` in infer and, from inference.yml, in predict; the config says
    ``device: gpu`` throughout, as PaddleClas configs do."""
    config = distillation_config(data, tmp_path)
    config["Global"]["device"] = "gpu"
    with pytest.warns(UserWarning, match=GPU_FALLBACK):
        run = train(read_plan(copy.deepcopy(config), registry), distributed=False)
    config["Global"]["pretrained_model"] = str(run.output_dir / "latest")
    plan = read_plan(config, registry)
    assert [p.name for p in plan.postprocess.walk()] == ["DistillationPostProcess", "Topk"]

    with pytest.warns(UserWarning, match=GPU_FALLBACK):
        inferred = infer(plan, echo=lambda line: None)
    with pytest.warns(UserWarning, match=GPU_FALLBACK):
        folder = export(plan)
    record = yaml.safe_load((folder / "inference.yml").read_text())
    assert record["PostProcess"] == {"name": "DistillationPostProcess", "func": "Topk", "topk": 2,
                                     "class_id_map_file": "label_list.txt"}
    with pytest.warns(UserWarning, match=GPU_FALLBACK) as warned:
        predicted = predict(plan, echo=lambda line: None)
    assert len([m for m in messages(warned) if GPU_FALLBACK in m]) == 1
    assert [p.class_ids for p in predicted] == [p.class_ids for p in inferred]
    assert all(len(p.class_ids) == 2 and p.label_names[0] in data.class_names for p in predicted)
    for a, b in zip(inferred, predicted):
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
    with pytest.warns(UserWarning, match=GPU_FALLBACK):  # the Predictor alone (a script's use) too
        assert type(Predictor(folder, registry, device="gpu").postprocess.inner).__name__ == "Topk"


def test_distillation_post_process_checks_its_func_and_arguments(registry):
    from corolla.config.planner import plan_named
    from corolla.plugin.errors import ComponentArgumentError, ConfigError

    with pytest.raises(ComponentArgumentError, match=r"Infer\.PostProcess\.topkk: postprocess 'Topk' .* Did you mean 'topk'"):
        plan_named(registry, "postprocess", {"name": "DistillationPostProcess", "topkk": 2}, "Infer.PostProcess")
    with pytest.raises(ConfigError, match=r"Infer\.PostProcess\.func: expected the name of a post-process"):
        plan_named(registry, "postprocess", {"name": "DistillationPostProcess", "func": "DistillationPostProcess"},
                   "Infer.PostProcess")
