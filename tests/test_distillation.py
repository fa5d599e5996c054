"""DistillationModel: sub-models from the registry, frozen teachers, PaddleClas state-dict keys."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import paddle
import pytest

from corolla import load_registry
from corolla.plugin.errors import ComponentArgumentError, ConfigError, UnknownComponentError, WeightsError
from engine_support import loss_of
from corolla.plugin.outputs import ModelOutputs

TINY_NET = """
import paddle
import paddle.nn.functional as F
from corolla import hookimpl

class TinyNet(paddle.nn.Layer):
    '''conv-bn-relu, strided conv, pooled linear head; return_stages gives stage1/stage2.'''

    def __init__(self, *, class_num=1000, width=4, pretrained=False, return_stages=None):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, width, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(width)
        self.conv2 = paddle.nn.Conv2D(width, width, 3, stride=2, padding=1)
        self.fc = paddle.nn.Linear(width, class_num)
        self.return_stages = return_stages
        if pretrained:
            self.set_state_dict(paddle.load(pretrained))

    def forward(self, x):
        stage1 = F.relu(self.bn(self.conv(x)))
        stage2 = F.relu(self.conv2(stage1))
        logits = self.fc(stage2.mean(axis=[2, 3]))
        if self.return_stages is None:
            return logits
        stages = {1: stage1, 2: stage2}
        return {"logits": logits, **{f"stage{i}": stages[i] for i in self.return_stages}}

@hookimpl
def corolla_backbones():
    return {"TinyNet": TinyNet}
"""


@pytest.fixture
def registry(fake_dist):
    fake_dist("tiny-nets", {"tiny": TINY_NET})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_registry()


def arch(**extra):
    params = {
        "models": [
            {"Teacher": {"name": "TinyNet", "class_num": 3, "width": 6}},
            {"Student": {"name": "TinyNet", "class_num": 3}},
        ],
        "freeze_params_list": [True, False],
        "infer_model_name": "Student",
    }
    params.update(extra)
    return params


def images(n=4, seed=0):
    return paddle.to_tensor(np.random.default_rng(seed).normal(size=(n, 3, 8, 8)).astype("float32"))


def test_outputs_are_keyed_by_model_name_and_predict_with_the_student(registry):
    model = registry.build("backbone", "DistillationModel", arch(), key_path="Arch")
    out = model(images())
    assert isinstance(out, ModelOutputs)
    assert list(out) == ["Teacher", "Student"] and out.primary == "Student"
    assert out["Teacher"].shape == [4, 3] and out["Student"].shape == [4, 3]
    assert model.inference_model() is model.Student
    np.testing.assert_allclose(model.inference_model()(images()).numpy(), out["Student"].numpy(), rtol=1e-6)


def test_state_dict_keys_carry_the_model_name_prefixes(registry):
    model = registry.build("backbone", "DistillationModel", arch(), key_path="Arch")
    keys = set(model.state_dict())
    teacher_keys = {f"Teacher.{k}" for k in model.Teacher.state_dict()}
    student_keys = {f"Student.{k}" for k in model.Student.state_dict()}
    assert keys == teacher_keys | student_keys
    assert "Teacher.bn._mean" in keys and "Student.fc.weight" in keys
    # a checkpoint of one distillation model loads into another, parameter for parameter
    other = registry.build("backbone", "DistillationModel", arch(), key_path="Arch")
    other.set_state_dict(model.state_dict())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[key].numpy(), value.numpy())


def test_frozen_teacher_stays_in_eval_mode_and_does_not_change(registry):
    model = registry.build("backbone", "DistillationModel", arch(), key_path="Arch")
    model.train()
    assert model.training and model.Student.training and model.Student.bn.training
    assert not model.Teacher.training and not model.Teacher.bn.training
    assert all(not p.trainable for p in model.Teacher.parameters())
    assert all(p.trainable for k, p in model.Student.named_parameters() if not k.endswith(("_mean", "_variance")))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    loss = loss_of([{"DistillationDMLLoss": None}, {"DistillationGTCELoss": None}], registry, "Loss.Train")
    optimizer = paddle.optimizer.SGD(learning_rate=0.5, parameters=model.parameters())
    for step in range(2):
        result = loss(model(images(seed=step)), paddle.to_tensor(np.array([0, 1, -1, 2])))
        result["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()
    after = model.state_dict()
    for key, value in before.items():
        changed = not np.array_equal(after[key].numpy(), value)
        if key.startswith("Teacher."):
            assert not changed, f"{key} of the frozen teacher changed"
    assert not np.array_equal(after["Student.fc.weight"].numpy(), before["Student.fc.weight"])
    assert not np.array_equal(after["Student.bn._mean"].numpy(), before["Student.bn._mean"])


def test_frozen_teacher_is_back_in_eval_mode_whatever_switched_modes(registry):
    model = registry.build("backbone", "DistillationModel", arch(), key_path="Arch")
    paddle.nn.Layer.train(model)  # what a wrapper's train() does, bypassing the override
    assert model.Teacher.bn.training
    model(images())
    assert not model.Teacher.bn.training and model.Student.bn.training


def test_unfrozen_models_learn_mutually(registry):
    model = registry.build("backbone", "DistillationModel", arch(freeze_params_list=None, infer_model_name=None), key_path="Arch")
    assert model.infer_model_name == "Student"
    result = loss_of([{"DistillationDMLLoss": None}], registry, "Loss.Train")(model(images()), paddle.to_tensor([0, 1, 2, 0]))
    result["loss"].backward()
    assert model.Teacher.fc.weight.grad is not None and float(model.Teacher.fc.weight.grad.abs().sum()) > 0
    assert float(model.Student.fc.weight.grad.abs().sum()) > 0


def test_a_pair_loss_over_models_of_different_class_counts_names_the_loss_and_the_shapes(registry):
    outputs = {"Student": paddle.zeros([2, 4]), "Teacher": paddle.zeros([2, 102])}
    loss = loss_of([{"DistillationGTCELoss": None}, {"DistillationDMLLoss": None}], registry, "Loss.Train")
    with pytest.raises(ConfigError, match=r"^Loss.Train.1.DistillationDMLLoss cannot be computed on the outputs "
                                          r"\(Student \[2, 4\], Teacher \[2, 102\]\): \(InvalidArgument\) Broadcast"):
        loss(outputs, paddle.to_tensor([0, 1]))


def test_each_model_loads_its_own_pretrained_weights(registry, tmp_path):
    source = registry.build("backbone", "TinyNet", {"class_num": 3, "width": 6})
    path = tmp_path / "teacher.pdparams"
    paddle.save(source.state_dict(), str(path))
    params = arch()
    params["models"][0]["Teacher"]["pretrained"] = str(path)
    model = registry.build("backbone", "DistillationModel", params, key_path="Arch")
    np.testing.assert_array_equal(model.Teacher.conv.weight.numpy(), source.conv.weight.numpy())
    by_list = registry.build("backbone", "DistillationModel", arch(pretrained_list=[str(path), None]), key_path="Arch")
    np.testing.assert_array_equal(by_list.Teacher.fc.weight.numpy(), source.fc.weight.numpy())


def test_arch_class_num_is_the_default_of_every_model(registry):
    params = arch(class_num=5)
    del params["models"][1]["Student"]["class_num"]
    model = registry.build("backbone", "DistillationModel", params, key_path="Arch")
    out = model(images())
    assert out["Student"].shape == [4, 5] and out["Teacher"].shape == [4, 3]


def test_features_for_losses_come_from_return_stages(registry):
    params = arch()
    for item in params["models"]:
        next(iter(item.values()))["return_stages"] = [1, 2]
    params["models"][0]["Teacher"]["width"] = 4  # FSP needs equal channel counts
    model = registry.build("backbone", "DistillationModel", params, key_path="Arch")
    out = model(images())
    assert set(out["Student"]) == {"logits", "stage1", "stage2"}
    assert out["Student"]["stage2"].shape == [4, 4, 4, 4]
    loss = loss_of([
        {"DistillationFSPLoss": {"feature_pairs": [["stage1", "stage2"]]}},
        {"DistillationL2Loss": {"key": "stage2"}},
        {"CELoss": None},
    ], registry, "Loss.Train")
    result = loss(out, paddle.to_tensor([0, 1, 2, 0]))
    assert set(result) == {"loss_fsp_Student_Teacher", "loss_l2_Student_Teacher", "CELoss", "loss"}
    assert float(result["loss"]) > 0


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"infer_model_name": "Pupil"}, ConfigError, "Arch.infer_model_name: expected one of the model names Teacher, Student, found 'Pupil'"),
        ({"freeze_params_list": [True]}, ConfigError, r"Arch.freeze_params_list: expected null or a list with one entry per model \(2\)"),
        ({"freeze_params_list": ["yes", False]}, ConfigError, "Arch.freeze_params_list: expected true/false for each model"),
        ({"models": []}, ConfigError, "Arch.models: expected a list of models"),
        ({"models": [{"Teacher": {"name": "TinyNet"}}, {"Teacher": {"name": "TinyNet"}}]}, ConfigError,
         "Arch.models.1: model name 'Teacher' is used twice"),
        ({"models": [{"Teacher": {"name": "TinyNet"}}, {"Student": {"name": "TinyNett"}}]}, UnknownComponentError,
         "Arch.models.1.Student: unknown backbone 'TinyNett'. Close matches: TinyNet"),
        ({"models": [{"Teacher": {"name": "TinyNet"}}, {"Student": {"name": "TinyNet", "widht": 3}}]}, ComponentArgumentError,
         "Arch.models.1.Student.widht: .* Did you mean 'width'"),
        ({"models": [{"Teacher": {"class_num": 3}}, {"Student": {"name": "TinyNet"}}]}, ConfigError,
         "Arch.models.0.Teacher: missing key 'name'"),
    ],
)
def test_bad_arch_settings_name_the_key(registry, change, error, message):
    with pytest.raises(error, match=message):
        registry.build("backbone", "DistillationModel", arch(**change), key_path="Arch")


def test_a_frozen_teacher_never_keeps_a_random_classifier(registry, tmp_path):
    source = registry.build("backbone", "MobileNetV3_small_x0_35", {"class_num": 4})
    path = tmp_path / "teacher4.pdparams"
    paddle.save(source.state_dict(), str(path))
    models = [{"Teacher": {"name": "MobileNetV3_small_x0_35", "class_num": 102, "pretrained": str(path)}},
              {"Student": {"name": "TinyNet", "class_num": 102}}]
    with pytest.warns(UserWarning, match=r"Arch.models.0.Teacher.class_num is 102, not Arch.class_num \(4\)"):
        with pytest.raises(WeightsError, match=rf"Arch.models.0.Teacher \(MobileNetV3_small_x0_35\) is frozen .* "
                                               rf"{path} has 4 classes and Arch.models.0.Teacher 102: .* "
                                               r"Set Arch.models.0.Teacher.class_num=4"):
            registry.build("backbone", "DistillationModel", arch(models=models, class_num=4), key_path="Arch")
    models[0]["Teacher"]["class_num"] = 4
    model = registry.build("backbone", "DistillationModel", arch(models=models), key_path="Arch")
    np.testing.assert_array_equal(model.Teacher.fc.weight.numpy(), source.fc.weight.numpy())


def test_a_frozen_model_of_an_attention_model_loads_strictly_and_errors_name_its_whole_key_path(registry, tmp_path):
    path = tmp_path / "teacher4.pdparams"
    paddle.save(registry.build("backbone", "MobileNetV3_small_x0_35", {"class_num": 4}).state_dict(), str(path))
    params = {"models": [{"Backbone": {"name": "MobileNetV3_small_x0_35", "class_num": 3, "pretrained": str(path)}}],
              "freeze_params_list": [True]}
    with pytest.raises(WeightsError, match=r"Arch.models.0.Backbone \(MobileNetV3_small_x0_35\) is frozen .*"
                                           r"Set Arch.models.0.Backbone.class_num=4"):
        registry.build("backbone", "AttentionModel", params, key_path="Arch")
    nested = arch(models=[{"Teacher": {"name": "AttentionModel", **params}}, {"Student": {"name": "TinyNet"}}])
    teacher = r"Arch.models.0.Teacher.models.0.Backbone"
    with pytest.raises(WeightsError, match=rf"{teacher} \(MobileNetV3_small_x0_35\) is frozen .*Set {teacher}.class_num=4"):
        registry.build("backbone", "DistillationModel", nested, key_path="Arch")
    nested["models"][0]["Teacher"]["freeze_params_list"] = [True, False]
    with pytest.raises(ConfigError, match=r"Arch.models.0.Teacher.freeze_params_list: expected null or a list with one entry per model \(1\)"):
        registry.build("backbone", "DistillationModel", nested, key_path="Arch")


def test_pretrained_in_two_places_is_an_error(registry):
    params = arch(pretrained_list=["a.pdparams", None])
    params["models"][0]["Teacher"]["pretrained"] = "b.pdparams"
    with pytest.raises(ConfigError, match=r"Arch.pretrained_list.0: Arch.models.0.Teacher.pretrained is also set"):
        registry.build("backbone", "DistillationModel", params, key_path="Arch")


PPCLS_NET = """
import paddle
from corolla import hookimpl

def ppcls_mobilenet_v3(*, class_num=1000):
    from ppcls.arch.backbone import MobileNetV3_small_x0_35
    return MobileNetV3_small_x0_35(class_num=class_num)

@hookimpl
def corolla_backbones():
    return {"PPClsMobileNetV3": ppcls_mobilenet_v3}
"""


@pytest.fixture
def ppcls(monkeypatch):
    """PaddleClas 2.6 from its wheel (installed under ``paddleclas/ppcls``)."""
    spec = importlib.util.find_spec("paddleclas")
    assert spec is not None, "paddleclas 2.6.0 must be installed (see README's test command)"
    monkeypatch.syspath_prepend(str(Path(spec.submodule_search_locations[0])))
    import ppcls.arch
    from ppcls.utils import logger

    logger.init_logger()
    return ppcls


def test_a_paddleclas_distillation_checkpoint_loads(fake_dist, ppcls):
    fake_dist("ppcls-nets", {"ppcls_nets": PPCLS_NET})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = load_registry()
    models = [{"Teacher": {"name": "MobileNetV3_small_x0_35", "class_num": 3}}, {"Student": {"name": "MobileNetV3_small_x0_35", "class_num": 3}}]
    theirs = ppcls.arch.DistillationModel(models=models, freeze_params_list=[True, False])
    ours = registry.build("backbone", "DistillationModel", {
        "models": [{"Teacher": {"name": "PPClsMobileNetV3", "class_num": 3}}, {"Student": {"name": "PPClsMobileNetV3", "class_num": 3}}],
        "freeze_params_list": [True, False],
    }, key_path="Arch")
    checkpoint = theirs.state_dict()
    assert {k: list(v.shape) for k, v in ours.state_dict().items()} == {k: list(v.shape) for k, v in checkpoint.items()}
    ours.set_state_dict(checkpoint)
    theirs.eval()
    ours.eval()
    x = paddle.nn.functional.interpolate(images(n=2), size=[32, 32])
    expected, got = theirs(x), ours(x)
    for name in ("Teacher", "Student"):
        np.testing.assert_allclose(got[name].numpy(), expected[name].numpy(), rtol=1e-5, atol=1e-6)
