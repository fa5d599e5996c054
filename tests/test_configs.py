"""The shipped seed configs: they validate as shipped, and each trains a few steps
(then evaluates) on generated data with only paths, sizes, device and pretrained overridden."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import corolla
import engine_support
from corolla.config.load import load_config, shipped_configs
from corolla.engine.export import export
from corolla.engine.inference import infer
from corolla.engine.predict import predict
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset
from corolla.config.planner import read_plan

CONFIGS = shipped_configs()
SEED_000 = [
    "quick_start/ResNet50_vd.yaml",
    "quick_start/ResNet50_vd_finetune.yaml",
    "quick_start/ResNet50_vd_ssld_finetune.yaml",
    "quick_start/ResNet50_vd_ssld_random_erasing_finetune.yaml",
    "quick_start/MobileNetV3_large_x1_0_finetune.yaml",
]
PULC_PERSON = "PULC/person_exists/PPLCNet_x1_0.yaml"


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


@pytest.mark.parametrize("name", SEED_000 + [PULC_PERSON, "quickstart.yaml"])
def test_shipped_config_validates_unchanged(name, registry):
    plan = read_plan(load_config(CONFIGS / name), registry)
    assert {'train', 'eval', 'export'} <= set(plan.ready_for())


def overrides(data, out: Path, *, crop_index: int = 1) -> list[str]:
    """Paths, small sizes, CPU, no downloads, and two training steps."""
    return [
        "Global.device=cpu", "Global.epochs=1", f"Global.output_dir={out}", "Global.image_shape=[3,32,32]",
        "Global.save_interval=10",  # no epoch_1 copy: ResNet50_vd checkpoints are 190 MB
        f"Global.save_inference_dir={out / 'inference'}",
        "+Global.callbacks=[{ConsoleLogger: null}, {MetricsLog: null}, {StopAfterSteps: {steps: 2}}]",
        *(f"DataLoader.{mode}.dataset.image_root={data.root}" for mode in ("Train", "Eval")),
        f"DataLoader.Train.dataset.cls_label_path={data.train_list}",
        f"DataLoader.Eval.dataset.cls_label_path={data.val_list}",
        f"DataLoader.Train.dataset.transform_ops.{crop_index}.RandCropImage.size=32",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.resize_short=36",
        "DataLoader.Eval.dataset.transform_ops.2.CropImage.size=32",
        "DataLoader.Train.sampler.batch_size=4", "DataLoader.Eval.sampler.batch_size=4",
        "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0",
    ]


@pytest.fixture(scope="module")
def flowers_like(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("flowers"), num_classes=3, images_per_class=4, image_size=40)


@pytest.mark.parametrize("name", SEED_000)
def test_seed_000_flow_trains_and_evaluates(name, flowers_like, registry, tmp_path):
    extra = [] if name.endswith("ResNet50_vd.yaml") else ["Arch.pretrained=False"]
    config = load_config(CONFIGS / name, overrides(flowers_like, tmp_path) + extra)
    run = train(read_plan(config, registry), distributed=False)
    assert run.global_step == 2 and run.stop_training
    records = [json.loads(l) for l in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    (evaluation,) = [r for r in records if r["event"] == "eval"]
    assert 0.0 <= evaluation["top1"] <= evaluation["top5"] <= 1.0 and evaluation["loss"] > 0
    assert (run.output_dir / "best_model.pdparams").is_file()


def test_seed_004_person_flow_end_to_end(registry, tmp_path, capsys):
    """PULC person: train, then infer, export and predict with ThreshOutput label names."""
    data = make_list_dataset(tmp_path / "person", num_classes=2, images_per_class=6, image_size=40)
    person = overrides(data, tmp_path / "out") + [
        "Arch.pretrained=False", "Global.start_eval_epoch=0",
        "DataLoader.Train.dataset.transform_ops.3.TimmAutoAugment.img_size=32",
        f"Infer.infer_imgs={data.root / 'images' / data.class_names[1]}",
        "Infer.transforms.1.ResizeImage.resize_short=36", "Infer.transforms.2.CropImage.size=32",
        "Infer.PostProcess.threshold=0.5",
    ]
    config = load_config(CONFIGS / PULC_PERSON, person)
    run = train(read_plan(config, registry), distributed=False)
    records = [json.loads(l) for l in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    (evaluation,) = [r for r in records if r["event"] == "eval"]
    assert {"tpr_at_fpr", "threshold", "top1", "top2"} <= set(evaluation) and evaluation["top2"] == 1.0
    assert run.best_metric_name == "tpr_at_fpr"  # the first Metric.Eval entry decides, as PaddleClas

    config = load_config(CONFIGS / PULC_PERSON, person + [f"Global.pretrained_model={run.output_dir / 'best_model'}"])
    plan = read_plan(config, registry)
    capsys.readouterr()
    inferred = infer(plan)
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"{Path(inferred[0].file).name}:\tclass id(s): [")
    assert line.endswith("label_name(s): ['someone']") or line.endswith("label_name(s): ['nobody']")
    export(plan)
    predicted = predict(plan)
    assert [p.label_names for p in predicted] == [p.label_names for p in inferred]
    assert all(abs(a.scores[0] - b.scores[0]) < 1e-4 for a, b in zip(inferred, predicted))
