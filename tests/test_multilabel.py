"""Multi-label tasks: MultiLabelDataset's label_ratio, the attribute metrics and post-processes
against hand-worked numbers, and PaddleClas's PULC attribute configs end to end (train, eval,
infer, export, predict) on generated data, with only paths, sizes and the machine overridden."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

import corolla
from corolla.config.load import load_config
from corolla.config.planner import read_plan
from corolla.engine.evaluate import evaluate_config
from corolla.engine.export import export
from corolla.engine.inference import infer
from corolla.engine.predict import Predictor, predict
from corolla.engine.train import train
from corolla.plugin.errors import ComponentArgumentError, DataError
from corolla.testing.datasets import make_list_dataset

PADDLECLAS_CONFIGS = Path(__file__).resolve().parents[2] / "shared" / "paddleclas-2.6" / "configs"
needs_configs = pytest.mark.skipif(not PADDLECLAS_CONFIGS.is_dir(), reason=f"PaddleClas 2.6 configs not found at {PADDLECLAS_CONFIGS}")


@pytest.fixture(scope="module")
def registry():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return corolla.load_registry()


def make_multilabel(root: Path, classes: int, *, seed: int = 5, images: int = 12) -> dict[str, Path]:
    """Generated images with random flags: ``train.txt`` (``images`` lines) and ``val.txt`` (4)."""
    data = make_list_dataset(root, num_classes=2, images_per_class=(images + 4) // 2, image_size=40,
                             val_fraction=4 / (images + 4), seed=seed)
    rng = np.random.default_rng(seed)
    lists = {}
    for name, source in (("train", data.train_list), ("val", data.val_list)):
        paths = [line.split()[0] for line in source.read_text().splitlines()]
        flags = (rng.random((len(paths), classes)) < 0.4).astype(int)
        lines = [f"{path}\t{','.join(map(str, row))}" for path, row in zip(paths, flags)]
        lists[name] = root / f"{name}.txt"
        lists[name].write_text("\n".join(lines) + "\n")
    lists["root"], lists["images"] = root, root / "images" / data.class_names[0]
    return lists


# --- the dataset --------------------------------------------------------------------------


def test_label_ratio_gives_each_class_share_of_positives(tmp_path, registry):
    data = make_list_dataset(tmp_path, num_classes=1, images_per_class=4, image_size=16, val_fraction=0)
    paths = [line.split()[0] for line in data.train_list.read_text().splitlines()]
    listing = tmp_path / "flags.txt"
    listing.write_text("".join(f"{p}\t{f}\n" for p, f in zip(paths, ["1,0,1", "0,0,1", "1,-1,0", "0,-1,1"])))
    plain = registry.build("dataset", "MultiLabelDataset", {"image_root": str(tmp_path), "cls_label_path": str(listing)})
    assert plain[0][1].tolist() == [1.0, 0.0, 1.0] and plain[2][1].tolist() == [1.0, -1.0, 0.0]
    weighted = registry.build("dataset", "MultiLabelDataset",
                              {"image_root": str(tmp_path), "cls_label_path": str(listing), "label_ratio": True})
    label = weighted[1][1]
    assert label.shape == (2, 3) and label.dtype == np.float32
    # class 0: 2 of 4 positive; class 1: 0 of the 2 lines that know it; class 2: 3 of 4
    np.testing.assert_allclose(label, [[0, 0, 1], [0.5, 0.0, 0.75]])
    listing.write_text(f"{paths[0]}\t1,2,0\n")
    with pytest.raises(DataError, match=r"flags.txt:1: expected comma-separated 0/1 flags such as 0,1,0, found .1,2,0."):
        registry.build("dataset", "MultiLabelDataset", {"image_root": str(tmp_path), "cls_label_path": str(listing)})


# --- metrics ---------------------------------------------------------------------------------

#: flags and logits of three images: predicted (logit > 0) [[1, 1], [0, 1], [0, 0]]
FLAGS = np.array([[1, 0], [1, 1], [0, 0]], dtype="float32")
LOGITS = np.array([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0]], dtype="float32")


def test_attr_metric_by_hand(registry):
    metric = registry.build("metric", "ATTRMetric", {})
    assert metric.update(paddle.to_tensor(LOGITS[:2]), paddle.to_tensor(FLAGS[:2])) == {}
    metric.update(paddle.to_tensor(LOGITS[2:]), paddle.to_tensor(np.stack([FLAGS[2:], FLAGS[2:] * 0 + 0.5], axis=1)))
    got = metric.result()
    # class 0: recall 1/2, specificity 1, precision 1; class 1: recall 1, specificity 1/2, precision 1/2
    expected = {"ma": 0.75, "label_f1": 2 / 3, "label_pos_recall": 0.75, "label_neg_recall": 0.75,
                # images: |G&Y| / |G|Y| = 1/2, 1/2, 0; precision 1/2, 1, 0; recall 1, 1/2, 0
                "instance_f1": 0.5, "instance_acc": 1 / 3, "instance_prec": 0.5, "instance_recall": 0.5}
    assert list(got) == list(expected)
    assert got == pytest.approx(expected)
    metric.reset()
    assert metric.result() == {}


def test_attr_metric_threshold_and_unknown_flags(registry):
    # PaddleClas thresholds logits at 0.5: a logit of 0.4 is negative there, and with threshold sigmoid(0.5)
    metric = registry.build("metric", "ATTRMetric", {"threshold": 0.6225})
    metric.update(paddle.to_tensor([[0.4, 0.6]]), paddle.to_tensor([[1.0, 1.0]]))
    assert metric.result()["label_pos_recall"] == pytest.approx(0.5)
    # an unknown flag (-1) is neither positive nor negative, whatever the prediction
    metric = registry.build("metric", "ATTRMetric", {})
    metric.update(paddle.to_tensor(LOGITS), paddle.to_tensor(FLAGS))
    metric.update(paddle.to_tensor([[5.0, -5.0]]), paddle.to_tensor([[-1.0, -1.0]]))
    assert metric.result()["ma"] == pytest.approx(0.75)
    with pytest.raises(ComponentArgumentError, match=r"Metric.Eval.0.ATTRMetric.*threshold"):
        read_plan({"Metric": {"Eval": [{"ATTRMetric": {"threshold": 1.5}}]}}, registry)


def test_accuracy_score_and_hamming_distance_by_hand(registry):
    labels, logits = paddle.to_tensor(FLAGS), paddle.to_tensor(LOGITS)
    by_label = registry.build("metric", "AccuracyScore", {})
    assert by_label.update(logits, labels) == {"AccuracyScore": pytest.approx(4 / 6)}  # 2 of 6 flags wrong
    by_sample = registry.build("metric", "AccuracyScore", {"base": "sample"})
    by_sample.update(logits, labels)
    assert by_sample.result() == {"AccuracyScore": pytest.approx(1 / 3)}  # only the third image is all right
    hamming = registry.build("metric", "HammingDistance", {})
    hamming.update(logits, labels)
    hamming.update(paddle.to_tensor([[1.0, -1.0]]), paddle.to_tensor([[1.0, -1.0]]))  # 1 known flag, right
    assert hamming.result() == {"HammingDistance": pytest.approx(2 / 7)}


# --- post-processes -----------------------------------------------------------------------------


def person_row() -> np.ndarray:
    row = np.full(26, 0.1)
    row[[22, 1, 18, 2, 5, 11]] = [0.9, 0.35, 0.55, 0.7, 0.8, 0.4]
    row[19:22], row[23:26], row[15:18] = [0.2, 0.7, 0.1], [0.1, 0.2, 0.8], [0.2, 0.6, 0.3]
    return row


def test_person_attribute_reads_as_paddleclas(registry):
    post = registry.build("postprocess", "PersonAttribute", {"threshold": 0.5, "glasses_threshold": 0.3, "hold_threshold": 0.6})
    [got] = post(person_row()[None], ["dir/090004.jpg"])
    attributes = ["Female", "Age18-60", "Back", "Glasses: True", "Hat: False", "HoldObjectsInFront: False",
                  "ShoulderBag", "Upper: ShortSleeve UpperLogo", "Lower:  Trousers", "No boots"]
    output = [0] * 26
    for i in (1, 2, 5, 16, 20, 22, 25):  # glasses above 0.3; holding (0.55) below 0.6
        output[i] = 1
    assert got.details == {"attributes": attributes, "output": output}
    assert got.class_ids == [1, 2, 5, 16, 20, 22, 25] and got.label_names[:2] == ["Glasses", "ShortSleeve"]
    assert got.line() == f"090004.jpg:\t {{'attributes': {attributes!r}, 'output': {output!r}}}"
    with pytest.raises(DataError, match=r"PersonAttribute reads 26 attribute probabilities .* \[1, 3\]"):
        post(np.zeros((1, 3)), ["a.jpg"])


def test_vehicle_and_table_attributes(registry):
    vehicle = registry.build("postprocess", "VehicleAttribute", {})
    row = np.full(19, 0.1)
    row[4], row[11] = 0.9, 0.3
    [got] = vehicle(row[None], ["car.jpg"])
    assert got.details == {"attributes": "Color: (red, prob: 0.9), Type unknown", "output": [int(i == 4) for i in range(19)]}
    assert got.label_names == ["red"]
    table = registry.build("postprocess", "TableAttribute", {"angle_threshold": 0.05})
    [got] = table(np.array([[0.9, 0.2, 0.6, 0.4, 0.7, 0.1]]), ["table.jpg"])
    assert got.details["attributes"] == ["Scanned", "Numerous", "Black-and-White", "Blurry", "Without-Obstacles", "Horizontal"]
    assert got.details["output"] == [1, 0, 1, 0, 1, 1]


def test_multilabel_thresh_output(registry, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("0 sky\n1 water\n2 grass\n")
    post = registry.build("postprocess", "MultiLabelThreshOutput", {"threshold": 0.5, "class_id_map_file": str(labels)})
    [got] = post(np.array([[0.2, 0.5, 0.93456789]]), ["scene.jpg"])
    assert (got.class_ids, got.scores, got.label_names) == ([1, 2], [0.5, 0.93457], ["water", "grass"])
    assert got.line() == "scene.jpg:\tclass id(s): [1, 2], score(s): [0.50, 0.93], label_name(s): ['water', 'grass']"


@pytest.mark.parametrize("name", ["Topk", "MultiLabelThreshOutput"])
def test_a_class_the_class_map_does_not_name_is_shown_by_number_with_one_warning(registry, tmp_path, name):
    labels = tmp_path / "labels.txt"
    labels.write_text("0 sky\n1 water\n")
    post = registry.build("postprocess", name, {"class_id_map_file": str(labels)})
    scores = np.array([[0.1, 0.2, 0.7], [0.05, 0.9, 0.96]])
    with pytest.warns(UserWarning, match=rf"class_id_map_file: {labels} names 2 classes, but not class 2; .* shown by their number") as caught:
        first, second = post(scores, ["a.jpg", "b.jpg"])
        post(scores, ["a.jpg", "b.jpg"])
    assert len(caught) == 1
    assert first.label_names[0] == "2" and "water" in second.label_names


# --- PaddleClas's PULC attribute configs, end to end ----------------------------------------------------


def machine(out: Path) -> list[str]:
    return ["Global.device=cpu", "Global.epochs=1", f"Global.output_dir={out}", f"Global.save_inference_dir={out / 'inference'}",
            "DataLoader.Train.sampler.batch_size=4", "DataLoader.Eval.sampler.batch_size=4",
            "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0"]


def data_paths(data: dict) -> list[str]:
    return [f"DataLoader.{mode}.dataset.{key}={value}" for mode, listing in (("Train", data["train"]), ("Eval", data["val"]))
            for key, value in (("image_root", data["root"]), ("cls_label_path", listing))] + [f"Infer.infer_imgs={data['images']}"]


#: PULC attribute configs at 32x48 instead of 192x256: every op that sets a size
SMALL_ATTRIBUTE_SIZES = [
    "Global.image_shape=[3,48,32]",
    "DataLoader.Train.dataset.transform_ops.1.ResizeImage.size=[32,48]",
    "DataLoader.Train.dataset.transform_ops.2.TimmAutoAugment.img_size=[32,48]",
    "DataLoader.Train.dataset.transform_ops.3.Padv2.size=[36,52]",
    "DataLoader.Train.dataset.transform_ops.4.RandomCropImage.size=[32,48]",
    "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=[32,48]",
    "Infer.transforms.1.ResizeImage.size=[32,48]",
]


def load(name: str, overrides: list[str]):
    """The config with ``overrides``, logging without the curve plots (seconds of matplotlib per run)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PaddleClas keys corolla does not use
        config = load_config(PADDLECLAS_CONFIGS / name, overrides)
    config["Global"]["callbacks"] = [{"ConsoleLogger": None}, {"MetricsLog": None}]
    return config


@needs_configs
def test_pulc_person_attribute_trains_evaluates_infers_exports_and_predicts(tmp_path, registry, capsys):
    data = make_multilabel(tmp_path / "data", 26)
    out = tmp_path / "out"
    config = load("PULC/person_attribute/PPLCNet_x1_0.yaml",
                  [*machine(out), *data_paths(data), *SMALL_ATTRIBUTE_SIZES, "Arch.pretrained=False"])
    run = train(read_plan(config, registry), distributed=False)
    assert run.global_step == 3  # 12 images, batches of 4
    assert run.best_metric_name == "ma" and 0.0 <= run.best_metric <= 1.0

    config["Global"]["pretrained_model"] = str(run.output_dir / "latest")
    plan = read_plan(config, registry)
    results = evaluate_config(plan)
    assert {"loss", "ma", "label_f1", "instance_f1"} <= set(results) and results["loss"] > 0

    capsys.readouterr()
    inferred = infer(plan)
    lines = capsys.readouterr().out.splitlines()
    assert len(inferred) == len(lines) == len(list(data["images"].iterdir())) == 8
    assert lines[0].startswith(f"{Path(inferred[0].file).name}:\t {{'attributes': ['")
    assert len(inferred[0].details["output"]) == 26

    folder = export(plan)
    record = yaml.safe_load((folder / "inference.yml").read_text())
    assert record["PostProcess"]["name"] == "PersonAttribute" and record["Global"]["output"] == "sigmoid probabilities"
    predicted = predict(plan, echo=lambda line: None)
    assert [p.file for p in predicted] == [p.file for p in inferred]
    assert all(len(p.details["attributes"]) == 10 for p in predicted)
    # the exported model ends in a sigmoid: its scores are the dygraph model's per-class probabilities
    images = np.random.default_rng(0).standard_normal([2, 3, 48, 32]).astype("float32")
    from corolla.engine.builders import build_trained_model
    with paddle.no_grad():
        expected = paddle.nn.functional.sigmoid(build_trained_model(plan)(paddle.to_tensor(images))).numpy()
    np.testing.assert_allclose(Predictor(folder, registry).scores(images), expected, atol=1e-4)


@needs_configs
def test_pulc_vehicle_attribute_distillation_trains_a_step(tmp_path, registry):
    data = make_multilabel(tmp_path / "data", 19, images=8)
    config = load("PULC/vehicle_attribute/PPLCNet_x1_0_distillation.yaml", [
        *machine(tmp_path / "out"), *data_paths(data), "DataLoader.Train.sampler.batch_size=8",
        "Global.image_shape=[3,32,32]", "DataLoader.Train.dataset.transform_ops.1.ResizeImage.size=32",
        "DataLoader.Train.dataset.transform_ops.2.TimmAutoAugment.img_size=32",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=32", "Infer.transforms.1.ResizeImage.size=32",
        "Arch.models.0.Teacher.name=ResNet18", "Arch.models.1.Student.pretrained=False",
    ])
    run = train(read_plan(config, registry), distributed=False)
    assert run.global_step == 1
    record = (run.output_dir / "metrics.jsonl").read_text()
    assert "loss_mll_Student" in record and "loss_dml_Student_Teacher" in record and '"ma"' in record


@needs_configs
def test_quick_start_multilabel_config_trains_and_infers_with_thresholds(tmp_path, registry, capsys):
    data = make_multilabel(tmp_path / "data", 33, images=8)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{i} scene{i}\n" for i in range(33)))
    config = load("quick_start/professional/MobileNetV1_multilabel.yaml", [
        *machine(tmp_path / "out"), *data_paths(data), "Arch.name=MobileNetV1_x0_25", "Arch.pretrained=False",
        "Global.image_shape=[3,32,32]", "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.resize_short=36",
        "DataLoader.Eval.dataset.transform_ops.2.CropImage.size=32",
        "Infer.transforms.1.ResizeImage.resize_short=36", "Infer.transforms.2.CropImage.size=32",
        f"Infer.PostProcess.class_id_map_file={labels}",
    ])
    run = train(read_plan(config, registry), distributed=False)
    assert run.global_step == 2 and run.best_metric_name == "AccuracyScore"
    config["Global"]["pretrained_model"] = str(run.output_dir / "latest")
    capsys.readouterr()
    inferred = infer(read_plan(config, registry))
    assert len(inferred) == 6 and all(0.5 <= s <= 1 for p in inferred for s in p.scores)
    assert all(name == f"scene{i}" for p in inferred for i, name in zip(p.class_ids, p.label_names))


def test_sigmoid_scores_follow_use_multilabel(registry):
    from corolla.engine.inference import output_activation
    base = {"Arch": {"name": "ResNet18", "class_num": 3}}
    assert output_activation(read_plan(base, registry)) == "softmax"
    assert output_activation(read_plan({**base, "Global": {"use_multilabel": True}}, registry)) == "sigmoid"
    assert output_activation(read_plan({"Arch": {**base["Arch"], "infer_add_softmax": False}}, registry)) is None
    assert math.isclose(1 / (1 + math.exp(-0.5)), 0.6225, abs_tol=1e-4)  # the ATTRMetric threshold of PaddleClas's numbers
