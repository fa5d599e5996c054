"""The PaddleClas-compatible losses (multi-label, DIST, SKD, WSL, MGD, PEFD, AFD, GoogLeNet):
each against numbers worked out by hand on tiny tensors, then against a NumPy reading of
its formula on random ones."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import paddle
import pytest

from corolla import load_registry
from corolla.config.load import load_config
from corolla.config.planner import read_plan
from corolla.engine.train import train
from corolla.plugin.errors import ComponentArgumentError, ConfigError, DataError
from corolla.plugin.outputs import ModelOutputs
from corolla.testing.datasets import make_list_dataset
from engine_support import loss_of

RNG = np.random.default_rng(3)
LN2 = math.log(2.0)


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def t(array) -> paddle.Tensor:
    return paddle.to_tensor(np.asarray(array, dtype="float32"))


def pair(student, teacher) -> ModelOutputs:
    return ModelOutputs({"Student": student, "Teacher": teacher}, primary="Student")


def value(losses: dict, name: str) -> float:
    return float(losses[name].numpy())


def build(registry, component, **params):
    """The loss object itself (the combined loss adds nothing to a single unweighted item)."""
    return loss_of([{component: params or None}], registry).terms[0][2]


def with_ratio(flags, ratio) -> paddle.Tensor:
    flags = np.asarray(flags, dtype="float32")
    return t(np.stack([flags, np.broadcast_to(np.asarray(ratio, "float32"), flags.shape)], axis=1))


def np_sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, dtype="float64")))


def np_softmax(x, axis=-1):
    x = np.asarray(x, dtype="float64")
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# --- MultiLabelLoss ---------------------------------------------------------------------


def test_multilabel_loss_by_hand(registry):
    zeros = t([[0.0, 0.0]])
    # sigmoid(0) = 1/2: every term is ln 2
    assert value(build(registry, "MultiLabelLoss")(zeros, t([[1, 0]])), "MultiLabelLoss") == pytest.approx(LN2)
    assert value(build(registry, "MultiLabelLoss", size_sum=True)(zeros, t([[1, 0]])), "MultiLabelLoss") == pytest.approx(2 * LN2)
    # weight_ratio: a positive of a class with 25% positives weighs e^0.75, a negative of a 50% class e^0.5
    weighted = build(registry, "MultiLabelLoss", weight_ratio=True, size_sum=True)(zeros, with_ratio([[1, 0]], [0.25, 0.5]))
    assert value(weighted, "MultiLabelLoss") == pytest.approx(LN2 * (math.exp(0.75) + math.exp(0.5)), rel=1e-6)
    # smoothing with epsilon 0.2 and two classes: flags 1, 0 become 0.9, 0.1; sigmoid(ln 3) = 3/4
    smoothed = build(registry, "MultiLabelLoss", epsilon=0.2)(t([[math.log(3.0)] * 2]), t([[1, 0]]))
    first, second = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25)), -(0.1 * math.log(0.75) + 0.9 * math.log(0.25))
    assert value(smoothed, "MultiLabelLoss") == pytest.approx((first + second) / 2, rel=1e-6)


def test_multilabel_loss_ignores_unknown_flags_and_rows(registry):
    loss = build(registry, "MultiLabelLoss", size_sum=True)
    # the -1 flag and the all-unknown row count nowhere, whatever their logits
    got = loss(t([[0.0, 100.0], [50.0, -50.0]]), t([[1, -1], [-1, -1]]))
    assert value(got, "MultiLabelLoss") == pytest.approx(LN2)


def test_multilabel_loss_matches_numpy(registry):
    logits = RNG.normal(size=(5, 4)).astype("float32") * 2
    flags = (RNG.random((5, 4)) > 0.6).astype("float32")
    ratio = flags.mean(axis=0)
    p = np_sigmoid(logits)
    bce = -(flags * np.log(p) + (1 - flags) * np.log(1 - p))
    weights = np.exp(flags * (1 - ratio) + (1 - flags) * ratio)
    loss = build(registry, "MultiLabelLoss", weight_ratio=True, size_sum=True)
    assert value(loss(t(logits), with_ratio(flags, ratio)), "MultiLabelLoss") == pytest.approx((bce * weights).sum(1).mean(), rel=1e-5)
    plain = build(registry, "MultiLabelLoss")
    assert value(plain(t(logits), t(flags)), "MultiLabelLoss") == pytest.approx(bce.mean(), rel=1e-5)
    mll = build(registry, "DistillationMultiLabelLoss", model_names=["Student"], weight_ratio=True, size_sum=True)
    got = mll(pair(t(logits), t(logits * 0)), with_ratio(flags, ratio))
    assert set(got) == {"loss_mll_Student"}
    assert value(got, "loss_mll_Student") == pytest.approx((bce * weights).sum(1).mean(), rel=1e-5)


def test_multilabel_loss_errors(registry):
    with pytest.raises(DataError, match=r"weight_ratio: true needs .* set label_ratio: true"):
        build(registry, "MultiLabelLoss", weight_ratio=True)(t([[0.0, 0.0]]), t([[1, 0]]))
    with pytest.raises(DataError, match=r"float labels \[N, 2\].*MultiLabelDataset"):
        build(registry, "MultiLabelLoss")(t([[0.0, 0.0]]), paddle.to_tensor(np.array([1])))
    with pytest.raises(ComponentArgumentError, match=r"Loss.Train.0.MultiLabelLoss.*epsilon"):
        loss_of([{"MultiLabelLoss": {"epsilon": 2}}], registry)


def test_dml_weight_ratio_weighs_each_class(registry):
    s, q = RNG.normal(size=(3, 4)).astype("float32"), RNG.normal(size=(3, 4)).astype("float32")
    flags = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [1, 1, 0, 0]], dtype="float32")
    ratio = np.array([0.5, 0.25, 0.75, 0.1], dtype="float32")
    p, r = np_softmax(s), np_softmax(q)
    cost = (r * np.log(r / p) + p * np.log(p / r)) * 4 / 2
    weights = np.exp(np.where(flags > 0.5, 1 - ratio, ratio)) * (flags >= 0)
    got = build(registry, "DistillationDMLLoss", weight_ratio=True)(pair(t(s), t(q)), with_ratio(flags, ratio))
    assert value(got, "loss_dml_Student_Teacher") == pytest.approx((cost * weights).mean(), rel=1e-5)


# --- logit distillation: DIST, SKD, WSL -----------------------------------------------------


def np_pearson(a, b):
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-8)


def test_dist_loss(registry):
    loss = build(registry, "DistillationDISTLoss", beta=1.0, gamma=2.0)
    same = t(RNG.normal(size=(4, 5)))
    assert value(loss(pair(same, same), None), "loss_dist_Student_Teacher") == pytest.approx(0.0, abs=1e-6)
    s, q = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5))
    p, r = np_softmax(s), np_softmax(q)
    expected = (1 - np_pearson(p, r).mean()) + 2 * (1 - np_pearson(p.T, r.T).mean())
    assert value(loss(pair(t(s), t(q)), None), "loss_dist_Student_Teacher") == pytest.approx(expected, rel=1e-5)


def test_skd_loss(registry):
    loss = build(registry, "DistillationSKDLoss", temperature=2.0, multiplier=2.0, alpha=0.9)
    # constant rows standardise to zeros: uniform predictions, kd = T^2 ln 2, ce = ln 2
    flat = t([[1.0, 1.0]])
    expected = 0.9 * 4 * LN2 + 0.1 * LN2
    got = loss(pair(flat, flat), paddle.to_tensor(np.array([1])))
    assert value(got, "loss_skd_Student_Teacher") == pytest.approx(expected, rel=1e-5)
    s, q, labels = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5)), np.array([0, -1, 3, 2])

    def standardized(x):
        return 2.0 * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-7)

    ns, nq = standardized(s), standardized(q)
    target = np.where(labels >= 0, labels, q.argmax(1))  # the unlabeled row takes the teacher's class
    kd = -(np_softmax(nq / 2) * np.log(np_softmax(ns / 2))).sum(1).mean() * 4
    ce = -np.log(np_softmax(ns)[np.arange(4), target]).mean()
    got = loss(pair(t(s), t(q)), paddle.to_tensor(labels))
    assert value(got, "loss_skd_Student_Teacher") == pytest.approx(0.9 * kd + 0.1 * ce, rel=1e-5)


def test_wsl_loss(registry):
    loss = build(registry, "DistillationWSLLoss", temperature=2.0)
    # student = teacher: the ratio of their CE is 1, the weight 1 - 1/e; uniform rows: kd = ln 2
    flat = t([[0.0, 0.0]])
    expected = 4 * (1 - math.exp(-1)) * LN2
    got = loss(pair(flat, flat), paddle.to_tensor(np.array([0])))
    assert value(got, "loss_wsl_Student_Teacher") == pytest.approx(expected, rel=1e-5)
    s, q, labels = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5)), np.array([1, 4, -1, 0])
    target = np.where(labels >= 0, labels, q.argmax(1))
    ce_s = -np.log(np_softmax(s)[np.arange(4), target])
    ce_t = -np.log(np_softmax(q)[np.arange(4), target])
    weight = 1 - np.exp(-np.maximum(ce_s / (ce_t + 1e-7), 0))
    kd = -(np_softmax(q / 2) * np.log(np_softmax(s / 2))).sum(1)
    got = loss(pair(t(s), t(q)), paddle.to_tensor(labels))
    assert value(got, "loss_wsl_Student_Teacher") == pytest.approx(4 * (kd * weight).mean(), rel=1e-5)


# --- feature distillation: MGD, PEFD (through DistillationPairLoss), AFD ---------------------------


def set_identity(conv: paddle.nn.Conv2D) -> None:
    """Make a square convolution pass each channel through (centre tap 1, bias 0)."""
    weight = np.zeros(conv.weight.shape, dtype="float32")
    centre = weight.shape[2] // 2
    for c in range(weight.shape[0]):
        weight[c, c, centre, centre] = 1.0
    conv.weight.set_value(weight)
    conv.bias.set_value(np.zeros(conv.bias.shape, dtype="float32"))


def features(student, teacher) -> ModelOutputs:
    return ModelOutputs({"Student": {"logits": t([[0.0]]), "blocks[1]": t(student)},
                         "Teacher": {"logits": t([[0.0]]), "blocks[3]": t(teacher)}}, primary="Student")


def test_mgd_loss_by_hand(registry):
    loss = build(registry, "DistillationPairLoss", base_loss_name="MGDLoss", s_key="blocks[1]", t_key="blocks[3]",
                 name="loss_mgd", student_channels=1, teacher_channels=1, alpha_mgd=2.0, lambda_mgd=0.0)
    mgd = loss.losses[0]
    assert mgd.align is None  # equal channel counts need no alignment
    set_identity(mgd.generation[0]), set_identity(mgd.generation[2])
    # nothing masked: G(s) = relu(s) = [1, 0]; loss = 2 * mean((1 - 0)^2, (0 - 0)^2) = 1
    got = loss(features([[[[1.0, -2.0]]]], [[[[0.0, 0.0]]]]), None)
    assert set(got) == {"loss_mgd_Student_Teacher"} and value(got, "loss_mgd_Student_Teacher") == pytest.approx(1.0)
    # everything masked: G(0) = 0, loss = 2 * mean(t^2)
    mgd.lambda_mgd = 1.0
    assert value(loss(features([[[[1.0, -2.0]]]], [[[[3.0, 1.0]]]]), None), "loss_mgd_Student_Teacher") == pytest.approx(10.0)


def test_mgd_aligns_student_channels_and_trains(registry):
    loss = build(registry, "DistillationPairLoss", base_loss_name="MGDLoss", s_key="blocks[1]", t_key="blocks[3]",
                 student_channels=3, teacher_channels=2)
    names = [name for name, _ in loss.named_parameters()]
    assert "losses.0.align.weight" in names and "losses.0.generation.2.weight" in names
    got = loss(features(RNG.normal(size=(2, 3, 4, 4)), RNG.normal(size=(2, 2, 4, 4))), None)["loss_pair_Student_Teacher"]
    got.backward()
    assert loss.losses[0].align.weight.grad is not None


def test_pefd_loss_by_hand(registry):
    loss = build(registry, "DistillationPairLoss", base_loss_name="PEFDLoss", s_key="blocks[1]", t_key="blocks[3]",
                 student_channel=2, teacher_channel=2, num_projectors=2)
    for projector in loss.losses[0].projectors:
        set_identity(projector)
    # f = relu(s) = (1, 0) against t = (1, 1): 1 - cos = 1 - 1/sqrt(2)
    got = loss(features([[[[1.0]], [[-3.0]]]], [[[[1.0]], [[1.0]]]]), None)
    assert value(got, "loss_pair_Student_Teacher") == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-6)


def test_pair_loss_checks_its_base_loss_arguments(registry):
    with pytest.raises(ComponentArgumentError, match=r"DistillationPairLoss.*student_chanels: not an argument of MGDLoss"):
        loss_of([{"DistillationPairLoss": {"base_loss_name": "MGDLoss", "student_chanels": 4, "teacher_channels": 4}}], registry)
    with pytest.raises(ComponentArgumentError, match=r"base_loss_name: expected one of MGDLoss, PEFDLoss"):
        loss_of([{"DistillationPairLoss": {"base_loss_name": "FooLoss"}}], registry)


def afd_outputs(key, s_values, query, t_values) -> ModelOutputs:
    return ModelOutputs({"Student": {"logits": t([[0.0]]), "bilinear_key": t(key), "value": [t(v) for v in s_values]},
                         "Teacher": {"logits": t([[0.0]]), "query": t(query), "value": [t(v) for v in t_values]}},
                        primary="Student")


def test_afd_loss_by_hand(registry):
    loss = build(registry, "AFDLoss", s_shapes=[[4, 2, 1], [8, 1, 1]], t_shapes=[[4, 2, 1]], qk_dim=1)
    loss.attention.p_t.set_value(np.zeros([1, 1], "float32"))
    loss.attention.p_s.set_value(np.zeros([2, 1], "float32"))
    # the teacher's one map attends over the student's two: logits ln 3 and 0 -> weights 3/4 and 1/4
    key = [[[[math.log(3.0)]], [[0.0]]]]  # [N=1, S=2, T=1, d=1]
    s_values = [[[1.0, 0.0], [0.0, 1.0]]]  # the student's maps pooled to the teacher's 2x1 size: [N, S, 2]
    got = loss(afd_outputs(key, s_values, [[[1.0]]], [[[0.0, 1.0]]]), None)
    # squared gaps: map 0 mean((1-0)^2, (0-1)^2) = 1, map 1 0 -> 3/4 * 1 + 1/4 * 0
    assert value(got, "loss_afd") == pytest.approx(0.75, rel=1e-6)
    assert sorted(name for name, _ in loss.named_parameters()) == ["attention.p_s", "attention.p_t"]


def test_afd_loss_says_when_shapes_disagree(registry):
    loss = build(registry, "AFDLoss", s_shapes=[[4, 2, 1]], t_shapes=[[4, 2, 1], [8, 1, 1]], qk_dim=1)
    with pytest.raises(Exception, match=r"AFDLoss: the models give 1 teacher values"):
        loss(afd_outputs([[[[0.0]]]], [[[1.0, 0.0]]], [[[1.0]]], [[[0.0, 1.0]]]), None)


def test_afd_attention_layers_name_their_shapes_key_when_the_features_differ(registry):
    """PaddleClas's AFD config gives the feature maps of 224 px images; at another size the
    error names the key to set and the sizes to set it to."""
    features = {"f0": paddle.zeros([2, 4, 8, 8]), "f1": paddle.zeros([2, 8, 4, 4])}
    where = "Arch.models.0.Teacher.models.1.LinearTransformTeacher"
    teacher = registry.build("backbone", "LinearTransformTeacher",
                             {"qk_dim": 2, "t_shapes": [[4, 56, 56], [8, 28, 28]], "keys": ["f0", "f1"]}, key_path=where)
    with pytest.raises(ConfigError, match=rf"^{where}.t_shapes is \[\[4, 56, 56\], \[8, 28, 28\]\], but the features f0, f1 "
                                          r"are \[\[4, 8, 8\], \[8, 4, 4\]\] \(PaddleClas's values are for 224 px images\)"):
        teacher(features)
    student = registry.build("backbone", "LinearTransformStudent", {"qk_dim": 2, "t_shapes": [[4, 8, 8]],
                                                                    "s_shapes": [[4, 8, 8], [8, 2, 2]], "keys": ["f0", "f1"]})
    with pytest.raises(ConfigError, match=r"^LinearTransformStudent.s_shapes is .* are \[\[4, 8, 8\], \[8, 4, 4\]\]"):
        student(features)


# --- GoogLeNet ---------------------------------------------------------------------------


def test_googlenet_loss(registry):
    loss = build(registry, "GoogLeNetLoss")
    labels = paddle.to_tensor(np.array([2, -1]))
    zeros = t(np.zeros((2, 4)))
    # uniform logits: each head's CE is ln 4; the auxiliary heads weigh 0.3 each
    training = {"logits": zeros, "aux_logits1": zeros, "aux_logits2": zeros}
    assert value(loss(training, labels), "GoogLeNetLoss") == pytest.approx(1.6 * math.log(4), rel=1e-6)
    assert value(loss(zeros, labels), "GoogLeNetLoss") == pytest.approx(math.log(4), rel=1e-6)  # evaluation: logits only
    with pytest.raises(ComponentArgumentError, match="GoogLeNetLoss does not smooth labels"):
        loss_of([{"GoogLeNetLoss": {"epsilon": 0.1}}], registry)


# --- PaddleClas's ImageNet/Distillation configs that use them: one training step each ------------------

PADDLECLAS_CONFIGS = Path(__file__).resolve().parents[2] / "shared" / "paddleclas-2.6" / "configs"
#: the feature-map shapes AFD's config gives for 224 pixels, at the 32 pixels of the test
RESNET34_32PX = [[64, 8, 8]] * 3 + [[128, 4, 4]] * 4 + [[256, 2, 2]] * 6 + [[512, 1, 1]] * 3
RESNET18_32PX = [[64, 8, 8]] * 2 + [[128, 4, 4]] * 2 + [[256, 2, 2]] * 2 + [[512, 1, 1]] * 2


def _flow(value) -> str:
    return str(value).replace(" ", "")


#: the log callbacks a test reads, without the curve plots (seconds of matplotlib per run)
QUIET = [{"ConsoleLogger": None}, {"MetricsLog": None}]
#: config -> (its own overrides, the loss terms a step logs)
DISTILLATION = {
    "resnet34_distill_resnet18_afd.yaml": ([
        "Arch.models.0.Teacher.models.0.ResNet34.pretrained=False",
        f"Arch.models.0.Teacher.models.1.LinearTransformTeacher.t_shapes={_flow(RESNET34_32PX)}",
        f"Arch.models.1.Student.models.1.LinearTransformStudent.t_shapes={_flow(RESNET34_32PX)}",
        f"Arch.models.1.Student.models.1.LinearTransformStudent.s_shapes={_flow(RESNET18_32PX)}",
        f"Loss.Train.2.AFDLoss.t_shapes={_flow(RESNET34_32PX)}", f"Loss.Train.2.AFDLoss.s_shapes={_flow(RESNET18_32PX)}",
    ], {"loss_gt_ce_Student", "loss_kl_Student_Teacher", "loss_afd"}),
    "resnet34_distill_resnet18_dist.yaml": (["Arch.models.0.Teacher.pretrained=False"], {"loss_dist_Student_Teacher"}),
    "resnet34_distill_resnet18_mgd.yaml": (["Arch.models.0.Teacher.pretrained=False"], {"loss_mgd_Student_Teacher"}),
    "resnet34_distill_resnet18_pefd.yaml": (["Arch.models.0.Teacher.pretrained=False"], {"loss_pefd_Student_Teacher"}),
    "resnet34_distill_resnet18_skd.yaml": (["Arch.models.0.Teacher.pretrained=False"], {"loss_skd_Student_Teacher"}),
    "resnet34_distill_resnet18_wsl.yaml": (["Arch.models.0.Teacher.pretrained=False"], {"loss_wsl_Student_Teacher"}),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=2, images_per_class=6, image_size=40, seed=8)


#: logit-only recipes, whose losses the tests above check: one slice of them runs per commit
LOGIT_ONLY = {"resnet34_distill_resnet18_dist.yaml", "resnet34_distill_resnet18_skd.yaml", "resnet34_distill_resnet18_wsl.yaml"}


@pytest.mark.skipif(not PADDLECLAS_CONFIGS.is_dir(), reason=f"PaddleClas 2.6 configs not found at {PADDLECLAS_CONFIGS}")
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LOGIT_ONLY else n for n in sorted(DISTILLATION)])
def test_imagenet_distillation_config_trains_a_step(name, images, registry, tmp_path):
    overrides, terms = DISTILLATION[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PaddleClas keys corolla does not use
        config = load_config(PADDLECLAS_CONFIGS / "ImageNet" / "Distillation" / name, [
            "Global.device=cpu", "Global.epochs=1", "Global.eval_during_train=False", f"Global.output_dir={tmp_path}",
            "Global.image_shape=[3,32,32]", "DataLoader.Train.sampler.batch_size=8", "DataLoader.Train.loader.num_workers=0",
            f"DataLoader.Train.dataset.image_root={images.root}", f"DataLoader.Train.dataset.cls_label_path={images.train_list}",
            f"DataLoader.Eval.dataset.image_root={images.root}", f"DataLoader.Eval.dataset.cls_label_path={images.val_list}",
            "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32", *overrides,
        ])
        config["Global"]["callbacks"] = QUIET
        run = train(read_plan(config, registry), distributed=False)
    assert run.global_step == 1
    logged = {key for line in (run.output_dir / "metrics.jsonl").read_text().splitlines() for key in json.loads(line)}
    assert terms <= logged
    assert all(math.isfinite(p.numpy().sum()) for p in run.model.parameters())
