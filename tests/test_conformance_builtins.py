"""corolla's own components pass the conformance kit that plugin authors run on theirs
(:mod:`corolla.testing.conformance`): every built-in of each kind the kit checks, and one
backbone per family module (a few small ones always, the others in CI's slow shards)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import paddle
import pytest
from _backbone_cases import FAMILIES, batch_size, input_size

from corolla.api import ModelOutputs
from corolla.testing.conformance import CHECKS, check_component, default_registry
from corolla.testing.datasets import make_image_folder, make_list_dataset

REGISTRY = default_registry()
#: the families checked on every run: small nets of the common block types
FAST_BACKBONES = ("PPLCNet_x0_25", "MobileNetV3_small_x0_35", "ShuffleNetV2_x0_25", "MobileNetV2_x0_25", "ESNet_x0_25")
#: multi-label flags of 4 samples, 4 classes
FLAGS = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0]], np.float32)


def _distilled(logits: paddle.Tensor) -> ModelOutputs:
    """A distillation model's outputs: the student's logits, and a fixed teacher."""
    return ModelOutputs({"Student": logits, "Teacher": logits.detach() * 0.5 + 0.1}, primary="Student")


def _feature_maps(logits: paddle.Tensor) -> ModelOutputs:
    """Student and teacher with two named feature maps each, made from the logits."""
    def model(x: paddle.Tensor) -> dict:
        maps = x.reshape([x.shape[0], x.shape[1], 1, 1])
        return {"logits": x, "stage1": maps, "stage2": maps * 2.0}
    return ModelOutputs({"Student": model(logits), "Teacher": model(logits.detach() * 0.5)}, primary="Student")


#: (kind, name) -> (params, the check's options) where the kit's defaults do not fit
SETTINGS: dict[tuple[str, str], tuple[dict, dict]] = {
    ("transform", "CropImage"): ({"size": 32}, {}),
    ("transform", "CropImageAtRatio"): ({"size": 32, "pad": 4}, {}),
    ("transform", "RandCropImage"): ({"size": 32}, {}),
    ("transform", "RandomCropImage"): ({"size": 32}, {}),
    ("transform", "RandomRotation"): ({"degrees": 15}, {}),
    ("transform", "ResizeImage"): ({"resize_short": 36}, {}),
    ("transform", "RandomErasing"): ({}, {"after_normalize": True}),
    # the teacher's arg-max stands in for a missing label
    ("loss", "DistillationDKDLoss"): ({}, {"outputs": _distilled, "skips_unlabeled": False}),
    ("loss", "DistillationSKDLoss"): ({}, {"outputs": _distilled, "skips_unlabeled": False}),
    ("loss", "DistillationWSLLoss"): ({}, {"outputs": _distilled, "skips_unlabeled": False}),
    ("loss", "DistillationFSPLoss"): ({"feature_pairs": [["stage1", "stage2"]]}, {"outputs": _feature_maps}),
    ("loss", "MultiLabelLoss"): ({}, {"labels": FLAGS}),
    ("loss", "DistillationMultiLabelLoss"): ({}, {"outputs": _distilled, "labels": FLAGS}),
    ("metric", "DistillationTopkAcc"): ({"model_key": "Student"}, {"outputs": _distilled}),
    ("metric", "ATTRMetric"): ({}, {"multilabel": True}),
    ("metric", "AccuracyScore"): ({}, {"multilabel": True}),
    ("metric", "HammingDistance"): ({}, {"multilabel": True}),
}
#: (kind, name) -> why the kit's inputs cannot exercise it (its own tests do)
OWN_TESTS: dict[tuple[str, str], str] = {
    ("loss", "AFDLoss"): "reads an AttentionModel's keys, values and queries",
    ("loss", "DistillationPairLoss"): "reads feature maps named by return_patterns, with their channel counts",
    ("callback", "SearchTrial"): "reports to a running Optuna study (tests/test_search.py)",
    ("dataset", "CustomLabelDataset"): "labels come from an op's makes_labels (tests/test_datasets.py)",
}


def _cases() -> list:
    cases = []
    for kind in CHECKS:
        if kind == "backbone":
            continue
        for component in REGISTRY.components(kind):
            if component.plugin.dist != "corolla" or component.is_alias:
                continue
            reason = OWN_TESTS.get((kind, component.name))
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            cases.append(pytest.param(kind, component.name, id=f"{kind}-{component.name}", marks=marks))
    return cases


@pytest.mark.parametrize("kind, name", _cases())
def test_builtin_component_conforms(kind, name, tmp_path):
    params, options = SETTINGS.get((kind, name), ({}, {}))
    if kind in ("loss", "metric") and name.startswith("Distillation"):
        options = {"outputs": _distilled, **options}
    if (kind, name) == ("callback", "VisualDL") and importlib.util.find_spec("visualdl") is None:
        pytest.skip("the visualdl package is not installed")
    if kind == "dataset":
        params, options = _dataset_settings(name, tmp_path)
    check_component(kind, name, params, **options)


def _dataset_settings(name: str, root: Path) -> tuple[dict, dict]:
    if name == "ImageFolderDataset":
        make_image_folder(root, num_classes=3, images_per_class=2, image_size=40)
        return {"image_root": str(root)}, {"class_num": 3}
    data = make_list_dataset(root, num_classes=3, images_per_class=3, image_size=40)
    if name == "MultiLabelDataset":
        lines = [line.split() for line in data.train_list.read_text().splitlines()]
        flags = [",".join("1" if int(label) == c else "0" for c in range(3)) for _, label in lines]
        listed = root / "multilabel.txt"
        listed.write_text("".join(f"{path}\t{flag}\n" for (path, _), flag in zip(lines, flags)))
        return {"image_root": str(root), "cls_label_path": str(listed)}, {}
    return {"image_root": str(root), "cls_label_path": str(data.train_list)}, {"class_num": 3}


def _backbone_cases() -> list:
    cases = []
    for names in FAMILIES.values():
        small = [n for n in names if n in FAST_BACKBONES]
        name = small[0] if small else names[0]
        cases.append(pytest.param(name, marks=() if small else pytest.mark.slow))
    return cases


@pytest.mark.parametrize("name", _backbone_cases())
def test_builtin_backbone_conforms(name):
    check_component("backbone", name, class_num=5, input_size=input_size(name), batch_size=batch_size(name))
