"""The shipped distillation recipes, and PaddleClas's own PULC person distillation config, run a
few iterations on generated data with only data paths, sizes, pretrained weights and the
machine (device, loader workers, output folders) overridden."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import corolla
from corolla.config.load import load_config, shipped_configs
from corolla.engine.checkpoint import model_arrays
from corolla.engine.files import write_checkpoint
from corolla.engine.evaluate import evaluate_config
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset
from corolla.config.planner import read_plan
from corolla.engine.safe_pickle import load_state_dict_file

CONFIGS = shipped_configs() / "distillation"
EVAL_SIZES = ["DataLoader.Eval.dataset.transform_ops.1.ResizeImage.resize_short=36",
              "DataLoader.Eval.dataset.transform_ops.2.CropImage.size=32"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two classes (person / nobody), labeled train and val images, and unlabeled extra images."""
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=2, images_per_class=8, image_size=40, unlabeled=4, seed=11)


@pytest.fixture(scope="module")
def registry():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return corolla.load_registry()


@pytest.mark.parametrize("name", sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")))
def test_every_distillation_recipe_validates_as_shipped(name, registry):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        config = load_config(CONFIGS / name)
        plan = read_plan(config, registry)
    assert {"train", "eval", "export"} <= set(plan.ready_for())
    assert config["Arch"]["name"] == "DistillationModel" and config["Arch"]["infer_model_name"] == "Student"


def machine_and_data(data, out: Path, train_list: Path) -> list[str]:
    """Overrides every test run needs: where the data and outputs are, and a small machine."""
    return [
        f"DataLoader.Train.dataset.image_root={data.root}", f"DataLoader.Train.dataset.cls_label_path={train_list}",
        f"DataLoader.Eval.dataset.image_root={data.root}", f"DataLoader.Eval.dataset.cls_label_path={data.val_list}",
        "DataLoader.Train.sampler.batch_size=8", "DataLoader.Eval.sampler.batch_size=8",
        "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0",
        f"Infer.infer_imgs={data.root / 'images'}",
        "Global.epochs=1", "Global.image_shape=[3,32,32]", "Global.device=cpu",
        f"Global.output_dir={out}", f"Global.save_inference_dir={out / 'inference'}",
    ]


def run_recipe(name: str, overrides: list[str], registry):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PaddleClas keys corolla does not use
        config = load_config(CONFIGS / name, overrides)
    return config, train(read_plan(config, registry), distributed=False)


def step_terms(run) -> set[str]:
    import json

    records = [json.loads(line) for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    return {key for r in records if r.get("event") == "step" for key in r}


def test_seed_000_fine_tuned_teacher_into_mobilenetv3_with_dml_on_extra_images(data, registry, tmp_path):
    teacher = registry.build("backbone", "ResNet50_vd", {"class_num": 102})
    write_checkpoint(tmp_path / "ResNet50_vd" / "best_model", {".pdparams": model_arrays(teacher)})
    config, run = run_recipe("R50_vd_distill_MV3_large_x1_0.yaml", [
        *machine_and_data(data, tmp_path / "out", data.train_extra_list),
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32", *EVAL_SIZES,
        f"Arch.models.0.Teacher.pretrained={tmp_path / 'ResNet50_vd' / 'best_model'}",
        "Arch.models.1.Student.pretrained=False",
    ], registry)
    assert run.global_step == run.steps_per_epoch == 2  # 12 labeled + 4 unlabeled images, batches of 8
    assert {"loss_dml_Student_Teacher", "top1", "top5"} <= step_terms(run)
    saved = load_state_dict_file(run.output_dir / "latest.pdparams")
    for key, value in model_arrays(teacher).items():  # the frozen teacher is exactly the one given
        np.testing.assert_array_equal(saved[f"Teacher.{key}"], value, err_msg=key)
    assert (run.output_dir / "best_model_student.pdparams").is_file()


def test_seed_004_resnet101_vd_into_pplcnet_with_skl_ugi(data, registry, tmp_path):
    config, run = run_recipe("person_PPLCNet_x1_0_distillation.yaml", [
        *machine_and_data(data, tmp_path, data.train_extra_list),
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32",
        "DataLoader.Train.dataset.transform_ops.3.TimmAutoAugment.img_size=32", *EVAL_SIZES,
        # the key the seed's command line sets to the trained teacher
        "Arch.models.0.Teacher.pretrained=False", "Arch.models.1.Student.pretrained=False",
    ], registry)
    assert run.global_step == 2 and "loss_dml_Student_Teacher" in step_terms(run)
    assert config["Arch"]["models"][1]["Student"]["name"] == "PPLCNet_x1_0"


def test_seed_003_resnet50_into_mobilenetv2_with_the_l2_distiller(data, registry, tmp_path):
    config, run = run_recipe("MV2_distill_R50_l2.yaml", [
        *machine_and_data(data, tmp_path, data.train_list),
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32", *EVAL_SIZES,
        "Arch.models.0.Teacher.pretrained=False",
    ], registry)
    assert run.global_step == 2
    assert {"loss_gt_ce_Student", "loss_l2_Student_Teacher"} <= step_terms(run)


def test_paddleclas_pulc_person_distillation_config_runs_and_evaluates(data, registry, tmp_path):
    config, run = run_recipe("PULC/person_exists/PPLCNet_x1_0_distillation.yaml", [
        *machine_and_data(data, tmp_path, data.train_extra_list),
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32",
        "DataLoader.Train.dataset.transform_ops.3.TimmAutoAugment.img_size=32", *EVAL_SIZES,
        "Arch.models.1.Student.pretrained=False",
    ], registry)
    assert run.global_step == 2 and "loss_dml_Student_Teacher" in step_terms(run)
    config["Global"]["pretrained_model"] = str(run.output_dir / "latest")
    results = evaluate_config(read_plan(config, registry))
    # plain CELoss, TprAtFpr and TopkAcc read the student (infer_model_name)
    assert results["loss"] > 0 and 0.0 <= results["top1"] <= results["top2"] == 1.0
