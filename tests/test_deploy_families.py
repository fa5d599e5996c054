"""ONNX export and the ONNX Runtime backend for every seed backbone family: the smallest
variant of each, at the smallest input it takes, exported in both formats and run by both
backends on the same preprocessed images: logits within 3e-4 of their largest value, the
same classes. (``test_deploy`` compares ``predict``'s lines and JSON of the two backends.)"""
from __future__ import annotations

import copy

import numpy as np
import paddle
import pytest

import corolla
import engine_support
from _backbone_cases import calibrate_batchnorm
from corolla.config.planner import read_plan
from corolla.engine.export import export
from corolla.engine.files import write_checkpoint
from corolla.engine.predict import Predictor
from corolla.testing.datasets import make_list_dataset

pytest.importorskip("paddle2onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

#: seed family -> (its smallest variant, the smallest input it takes in inference): AlexNet and
#: VGG flatten a 6x6 / 7x7 map, InceptionV4's stem needs 75 pixels, GoogLeNet's pools 64
FAMILIES = {
    "ResNet": ("ResNet18", 32),
    "ResNet_vd": ("ResNet18_vd", 32),
    "ResNeXt": ("ResNeXt50_32x4d", 32),
    "SE_ResNeXt": ("SE_ResNet18_vd", 32),
    "MobileNetV1": ("MobileNetV1_x0_25", 32),
    "MobileNetV2": ("MobileNetV2_x0_25", 32),
    "MobileNetV3": ("MobileNetV3_small_x0_35", 32),
    "PP-LCNet": ("PPLCNet_x0_25", 32),
    "ShuffleNetV2": ("ShuffleNetV2_x0_25", 32),
    "AlexNet": ("AlexNet", 224),
    "VGG": ("VGG11", 224),
    "GoogLeNet": ("GoogLeNet", 64),
    "InceptionV4": ("InceptionV4", 75),
    "DistillationModel": ("DistillationModel", 32),
}
DISTILLATION = {"name": "DistillationModel", "infer_model_name": "Student", "freeze_params_list": [True, False],
                "models": [{"Teacher": {"name": "TinyNet"}}, {"Student": {"name": "MobileNetV3_small_x0_35"}}]}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=4, images_per_class=2, image_size=80, seed=17)


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


#: float32 rounding in the two runtimes' fused kernels: MobileNetV2's logits differ by up to
#: 1.4e-4 of the largest for some random weights (2e-5 to 8e-5 for most); export itself allows 1e-3
TOLERANCE = 3e-4

#: the families whose smallest export is over 90 MB: marked slow like the larger variants elsewhere
HEAVY = {"ResNeXt", "AlexNet", "VGG", "InceptionV4"}


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in HEAVY else f for f in FAMILIES])
def test_onnx_export_runs_like_paddle_inference(family, data, registry, tmp_path):
    name, size = FAMILIES[family]
    paddle.seed(0)  # the same weights in every run
    arch = copy.deepcopy(DISTILLATION) if name == "DistillationModel" else {"name": name}
    arch.update(class_num=data.num_classes, infer_add_softmax=False)  # logits: a stricter comparison than probabilities
    config = engine_support.tiny_config(data, tmp_path, size=size, arch=arch)
    config["Global"]["save_inference_dir"] = str(tmp_path / "model")
    model = read_plan(copy.deepcopy(config), registry).model.part.build(registry)
    if any(isinstance(layer, paddle.nn.layer.norm._BatchNormBase) for layer in model.sublayers()):
        calibrate_batchnorm(model, paddle.to_tensor(np.random.default_rng(0).standard_normal((4, 3, size, size), dtype=np.float32)))
        write_checkpoint(tmp_path / "weights", {".pdparams": {k: v.numpy() for k, v in model.state_dict().items()}})
        config["Global"]["pretrained_model"] = str(tmp_path / "weights")
    del model

    folder = export(read_plan(config, registry), formats=["all"])  # itself checks that the two agree within 1e-3
    runs = {backend: Predictor(folder, registry, backend=backend, threads=2) for backend in ("paddle", "onnxruntime")}
    images = np.stack([runs["paddle"].pipeline(str(path)) for path in sorted((data.root / "images").rglob("*.jpg"))])
    expected, got = runs["paddle"].scores(images), runs["onnxruntime"].scores(images)
    assert got.shape == expected.shape == (8, data.num_classes)
    scale = float(np.abs(expected).max())
    assert scale > 0 and np.abs(got - expected).max() <= TOLERANCE * scale
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * TOLERANCE * scale  # where the first class is not a tie
    assert clear.any() and (got.argmax(1) == expected.argmax(1))[clear].all()
