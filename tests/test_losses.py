"""Every loss against a NumPy computation of its formula on fixed logits; the weighted combiner."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from corolla import load_registry
from corolla.plugin.errors import ComponentArgumentError, ConfigError, DataError, UnknownComponentError
from engine_support import loss_of
from corolla.plugin.outputs import ModelOutputs

RNG = np.random.default_rng(7)
N, C = 6, 5
STUDENT = RNG.normal(size=(N, C)).astype("float32") * 2
TEACHER = RNG.normal(size=(N, C)).astype("float32") * 2
LABELS = np.array([0, 3, -1, 4, 1, -1], dtype="int64")
LABELED = LABELS >= 0


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def tensor(array: np.ndarray) -> paddle.Tensor:
    return paddle.to_tensor(array)


def outputs(**named: np.ndarray) -> ModelOutputs:
    return ModelOutputs({k: tensor(v) for k, v in named.items()}, primary=next(iter(named)))


def build(registry, items, path="Loss.Train"):
    return loss_of(items, registry, path)


def value(t: paddle.Tensor) -> float:
    return float(t.numpy())


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype("float64")
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_softmax(x: np.ndarray) -> np.ndarray:
    return np.exp(np_log_softmax(x))


def np_one_hot(labels: np.ndarray, classes: int = C) -> np.ndarray:
    return np.eye(classes)[np.clip(labels, 0, None)]


def np_label_ce(logits, labels, epsilon=0.0):
    target = np_one_hot(labels) * (1 - epsilon) + epsilon / C
    rows = -(target * np_log_softmax(logits)).sum(-1)
    return rows[labels >= 0].mean()


# --- CELoss ---------------------------------------------------------------------


def test_celoss_matches_numpy_and_ignores_unlabeled_rows(registry):
    loss = build(registry, [{"CELoss": None}])
    got = loss(tensor(STUDENT), tensor(LABELS))
    assert value(got["CELoss"]) == pytest.approx(np_label_ce(STUDENT, LABELS), rel=1e-5)
    assert value(got["loss"]) == pytest.approx(value(got["CELoss"]))
    # the unlabeled rows do not matter at all
    changed = STUDENT.copy()
    changed[~LABELED] = 100.0
    assert value(loss(tensor(changed), tensor(LABELS))["loss"]) == pytest.approx(value(got["loss"]), rel=1e-6)


def test_celoss_label_smoothing_and_column_labels(registry):
    loss = build(registry, [{"CELoss": {"epsilon": 0.1}}])
    got = loss(tensor(STUDENT), tensor(LABELS.reshape(-1, 1)))["loss"]
    assert value(got) == pytest.approx(np_label_ce(STUDENT, LABELS, 0.1), rel=1e-5)
    assert np_label_ce(STUDENT, LABELS, 0.1) != pytest.approx(np_label_ce(STUDENT, LABELS), rel=1e-3)


def test_celoss_soft_labels_from_mixup(registry):
    lam = 0.7
    soft = lam * np.eye(C)[[0, 1, 2, 3, 4, 0]] + (1 - lam) * np.eye(C)[[4, 3, 2, 1, 0, 1]]
    soft = soft.astype("float32")
    expected = -(soft * np_log_softmax(STUDENT)).sum(-1).mean()
    got = build(registry, [{"CELoss": None}])(tensor(STUDENT), tensor(soft))["loss"]
    assert value(got) == pytest.approx(expected, rel=1e-5)
    smoothed = soft * 0.8 + 0.2 / C
    expected_eps = -(smoothed * np_log_softmax(STUDENT)).sum(-1).mean()
    got_eps = build(registry, [{"CELoss": {"epsilon": 0.2}}])(tensor(STUDENT), tensor(soft))["loss"]
    assert value(got_eps) == pytest.approx(expected_eps, rel=1e-5)


def test_celoss_of_an_all_unlabeled_batch_is_zero_with_a_gradient(registry):
    logits = tensor(STUDENT)
    logits.stop_gradient = False
    got = build(registry, [{"CELoss": None}])(logits, tensor(np.full(N, -1, dtype="int64")))["loss"]
    got.backward()
    assert value(got) == 0.0
    assert np.all(logits.grad.numpy() == 0)


def test_celoss_gradient_matches_softmax_minus_onehot(registry):
    logits = tensor(STUDENT)
    logits.stop_gradient = False
    build(registry, [{"CELoss": None}])(logits, tensor(LABELS))["loss"].backward()
    expected = (np_softmax(STUDENT) - np_one_hot(LABELS)) * LABELED[:, None] / LABELED.sum()
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_celoss_reads_the_predicting_model_or_the_named_one(registry):
    named = outputs(Student=STUDENT, Teacher=TEACHER)
    plain = build(registry, [{"CELoss": None}])(named, tensor(LABELS))["loss"]
    assert value(plain) == pytest.approx(np_label_ce(STUDENT, LABELS), rel=1e-5)
    teacher = build(registry, [{"CELoss": {"model_name": "Teacher"}}])(named, tensor(LABELS))["loss"]
    assert value(teacher) == pytest.approx(np_label_ce(TEACHER, LABELS), rel=1e-5)
    staged = {"logits": tensor(TEACHER), "stage2": tensor(STUDENT)}
    by_key = build(registry, [{"CELoss": {"key": "stage2"}}])(staged, tensor(LABELS))["loss"]
    assert value(by_key) == pytest.approx(np_label_ce(STUDENT, LABELS), rel=1e-5)
    by_default = build(registry, [{"CELoss": None}])(staged, tensor(LABELS))["loss"]
    assert value(by_default) == pytest.approx(np_label_ce(TEACHER, LABELS), rel=1e-5)


def test_celoss_bad_inputs_say_what_was_expected(registry):
    with pytest.raises(ConfigError, match=r"Loss.Train.0.CELoss: .*epsilon: expected null or a number in \[0, 1\), found 1.5"):
        build(registry, [{"CELoss": {"epsilon": 1.5}}])
    loss = build(registry, [{"CELoss": None}])
    with pytest.raises(DataError, match="class label 7 is out of range for 5 classes"):
        loss(tensor(STUDENT), tensor(np.array([0, 1, 2, 3, 4, 7])))
    with pytest.raises(DataError, match=r"soft labels must have shape \[N, 5\]"):
        loss(tensor(STUDENT), tensor(np.zeros((N, 3), dtype="float32")))
    with pytest.raises(ConfigError, match="Loss.Train.0.CELoss: model output 'Nobody' not found; the model returned: Student, Teacher"):
        build(registry, [{"CELoss": {"model_name": "Nobody"}}])(outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))


# --- distillation cross entropies ----------------------------------------------


def test_distillation_gt_celoss_per_model(registry):
    loss = build(registry, [{"DistillationGTCELoss": {"model_names": ["Student", "Teacher"], "epsilon": 0.1}}])
    got = loss(outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))
    assert value(got["loss_gt_ce_Student"]) == pytest.approx(np_label_ce(STUDENT, LABELS, 0.1), rel=1e-5)
    assert value(got["loss_gt_ce_Teacher"]) == pytest.approx(np_label_ce(TEACHER, LABELS, 0.1), rel=1e-5)
    assert value(got["loss"]) == pytest.approx(np_label_ce(STUDENT, LABELS, 0.1) + np_label_ce(TEACHER, LABELS, 0.1), rel=1e-5)


def test_distillation_celoss_is_soft_label_ce_on_every_row(registry):
    loss = build(registry, [{"DistillationCELoss": {"model_name_pairs": [["Student", "Teacher"]]}}])
    got = loss(outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))
    expected = -(np_softmax(TEACHER) * np_log_softmax(STUDENT)).sum(-1).mean()
    assert value(got["loss_ce_Student_Teacher"]) == pytest.approx(expected, rel=1e-5)
    eps = build(registry, [{"DistillationCELoss": {"epsilon": 0.1}}])(outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))
    q = np_softmax(TEACHER) * 0.9 + 0.1 / C
    assert value(eps["loss"]) == pytest.approx(-(q * np_log_softmax(STUDENT)).sum(-1).mean(), rel=1e-5)


# --- the combiner ---------------------------------------------------------------


def test_a_single_loss_weight_is_applied(registry):
    got = build(registry, [{"CELoss": {"weight": 0.25}}])(tensor(STUDENT), tensor(LABELS))
    assert value(got["loss"]) == pytest.approx(0.25 * np_label_ce(STUDENT, LABELS), rel=1e-5)
    assert value(got["CELoss"]) == pytest.approx(value(got["loss"]))


def test_every_pair_and_every_loss_count_with_their_weights(registry):
    named = outputs(Student=STUDENT, Teacher=TEACHER, Student2=TEACHER[::-1].copy())
    loss = build(registry, [
        {"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}},
        {"DistillationCELoss": {"weight": 2.0, "model_name_pairs": [["Student", "Teacher"], ["Student", "Student2"]]}},
        {"CELoss": {"weight": 0.5}},
        {"CELoss": {"weight": 3.0, "model_name": "Teacher"}},
    ])
    got = loss(named, tensor(LABELS))
    soft = lambda s, t: -(np_softmax(t) * np_log_softmax(s)).sum(-1).mean()  # noqa: E731
    expected = {
        "loss_gt_ce_Student": np_label_ce(STUDENT, LABELS),
        "loss_ce_Student_Teacher": 2 * soft(STUDENT, TEACHER),
        "loss_ce_Student_Student2": 2 * soft(STUDENT, TEACHER[::-1]),
        "CELoss": 0.5 * np_label_ce(STUDENT, LABELS),
        "CELoss_3": 3 * np_label_ce(TEACHER, LABELS),
    }
    assert set(got) == set(expected) | {"loss"}
    for name, number in expected.items():
        assert value(got[name]) == pytest.approx(number, rel=1e-5), name
    assert value(got["loss"]) == pytest.approx(sum(expected.values()), rel=1e-5)


@pytest.mark.parametrize(
    ("items", "error", "message"),
    [
        ([{"CELoss": {"weight": "heavy"}}], ConfigError, r"Loss.Train.0.CELoss.weight: expected a finite number >= 0, found 'heavy'"),
        ([{"CELoss": {"weight": -1}}], ConfigError, r"Loss.Train.0.CELoss.weight: expected a finite number >= 0, found -1"),
        ([{"CELos": None}], UnknownComponentError, r"Loss.Train.0.CELos: unknown loss 'CELos'. Close matches: CELoss"),
        ([{"CELoss": {"epsilom": 0.1}}], ComponentArgumentError, r"Loss.Train.0.CELoss.epsilom: .* Did you mean 'epsilon'"),
        ([], ConfigError, r"Loss.Train: expected a list of at least one loss"),
        ([{"DistillationCELoss": {"model_name_pairs": ["Student"]}}], ConfigError,
         r"Loss.Train.0.DistillationCELoss: .*model_name_pairs: expected a non-empty list of pairs"),
    ],
)
def test_bad_loss_lists_name_the_key_path(registry, items, error, message):
    with pytest.raises(error, match=message):
        build(registry, items)


def test_a_loss_returning_no_terms_is_an_error(registry, fake_dist):
    fake_dist("empty-loss", {"empty": """
        from corolla import hookimpl

        @hookimpl
        def corolla_losses():
            return {"EmptyLoss": lambda: (lambda outputs, labels: {})}
    """})
    loss = build(load_registry(), [{"EmptyLoss": None}], "Loss.Eval")
    with pytest.raises(ConfigError, match="Loss.Eval.0.EmptyLoss: a loss must return a non-empty dict"):
        loss(tensor(STUDENT), tensor(LABELS))


def test_a_loss_term_that_is_not_a_scalar_tensor_is_named(registry, fake_dist):
    fake_dist("odd-loss", {"odd": """
        from corolla import hookimpl

        @hookimpl
        def corolla_losses():
            return {"FloatLoss": lambda: (lambda outputs, labels: {"bad": 1.0}),
                    "RowLoss": lambda: (lambda outputs, labels: {"rows": (outputs ** 2).mean(axis=1)})}
    """})
    for name, message in (("FloatLoss", r"term 'bad' is a float, expected a scalar paddle Tensor"),
                          ("RowLoss", r"term 'rows' has shape \[6\], expected a scalar")):
        loss = build(load_registry(), [{"CELoss": None}, {name: None}], "Loss.Train")
        with pytest.raises(ConfigError, match=rf"^Loss.Train.1.{name}: {message}"):
            loss(tensor(STUDENT), tensor(LABELS))


# --- divergences ----------------------------------------------------------------


def np_kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(q)), 0).sum(-1)


@pytest.mark.parametrize("params", [{}, {"temperature": 2}, {"T": 1}])
def test_kldiv_loss_is_hinton_kd(registry, params):
    t = params.get("temperature", params.get("T", 4))
    got = build(registry, [{"DistillationKLDivLoss": params}])(outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))
    expected = t * t * np_kl_rows(np_softmax(TEACHER / t), np_softmax(STUDENT / t)).sum() / N
    assert value(got["loss_kl_Student_Teacher"]) == pytest.approx(expected, rel=1e-5)


def np_dml(s, t, act, sum_across):
    p, q = act(s.astype("float64")), act(t.astype("float64"))
    cost = C * (q * np.log(q / p) + p * np.log(p / q)) / 2
    return cost.sum(-1).mean() if sum_across else cost.mean()


def test_dml_loss_is_the_batch_mean_of_symmetric_kl(registry):
    got = build(registry, [{"DistillationDMLLoss": {"model_name_pairs": [["Student", "Teacher"]]}}])(
        outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))
    p, q = np_softmax(STUDENT), np_softmax(TEACHER)
    symmetric = ((np_kl_rows(q, p) + np_kl_rows(p, q)) / 2).mean()
    assert value(got["loss_dml_Student_Teacher"]) == pytest.approx(symmetric, rel=1e-5)
    assert symmetric == pytest.approx(np_dml(STUDENT, TEACHER, np_softmax, False), rel=1e-9)


@pytest.mark.parametrize(("act", "np_act"), [("softmax", np_softmax), ("sigmoid", lambda x: 1 / (1 + np.exp(-x)))])
def test_dml_loss_activations_and_class_sum(registry, act, np_act):
    params = {"act": act, "sum_across_class_dim": True}
    got = build(registry, [{"DistillationDMLLoss": params}])(outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))
    assert value(got["loss"]) == pytest.approx(np_dml(STUDENT, TEACHER, np_act, True), rel=1e-5)


def test_dml_loss_trains_both_models(registry):
    s, t = tensor(STUDENT), tensor(TEACHER)
    s.stop_gradient = t.stop_gradient = False
    build(registry, [{"DistillationDMLLoss": None}])(ModelOutputs({"Student": s, "Teacher": t}, primary="Student"), tensor(LABELS))["loss"].backward()
    assert np.abs(s.grad.numpy()).sum() > 0 and np.abs(t.grad.numpy()).sum() > 0


def np_dkd(s, t, target, temperature, alpha, beta):
    """DKD from its definition: binary target/rest split, and the distribution over the other classes."""
    ps, pt = np_softmax(s / temperature), np_softmax(t / temperature)
    rows = np.arange(len(target))
    b_s = np.stack([ps[rows, target], 1 - ps[rows, target]], -1)
    b_t = np.stack([pt[rows, target], 1 - pt[rows, target]], -1)
    others = ~np.eye(s.shape[1], dtype=bool)[target]
    n_s = ps[others].reshape(len(target), -1)
    n_t = pt[others].reshape(len(target), -1)
    n_s, n_t = n_s / n_s.sum(-1, keepdims=True), n_t / n_t.sum(-1, keepdims=True)
    tckd, nckd = np_kl_rows(b_t, b_s).sum(), np_kl_rows(n_t, n_s).sum()
    return (alpha * tckd + beta * nckd) * temperature ** 2 / len(target)


def test_dkd_loss_matches_its_definition(registry):
    params = {"temperature": 2.0, "alpha": 0.5, "beta": 3.0}
    got = build(registry, [{"DistillationDKDLoss": params}])(outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))
    # unlabeled rows use the teacher's arg-max as the target class
    target = np.where(LABELED, LABELS, TEACHER.argmax(-1))
    assert value(got["loss_dkd_Student_Teacher"]) == pytest.approx(np_dkd(STUDENT, TEACHER, target, 2.0, 0.5, 3.0), rel=1e-4)
    as_gt = build(registry, [{"DistillationDKDLoss": {**params, "use_target_as_gt": True}}])(
        outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))
    assert value(as_gt["loss"]) == pytest.approx(np_dkd(STUDENT, TEACHER, TEACHER.argmax(-1), 2.0, 0.5, 3.0), rel=1e-4)


# --- distances --------------------------------------------------------------------


def np_smooth_l1(d, delta):
    a = np.abs(d)
    return np.where(a < delta, 0.5 * a * a, delta * a - 0.5 * delta * delta)


@pytest.mark.parametrize(
    ("params", "entry", "expected"),
    [
        ({"mode": "l2"}, "loss_l2_Student_Teacher", ((STUDENT - TEACHER) ** 2).mean()),
        ({"mode": "l1", "reduction": "sum"}, "loss_l1_Student_Teacher", np.abs(STUDENT - TEACHER).sum()),
        ({"mode": "smooth_l1", "delta": 0.5}, "loss_smooth_l1_Student_Teacher", np_smooth_l1(STUDENT - TEACHER, 0.5).mean()),
        ({"mode": "l2", "act": "softmax"}, "loss_l2_Student_Teacher", ((np_softmax(STUDENT) - np_softmax(TEACHER)) ** 2).mean()),
    ],
)
def test_distance_loss_modes(registry, params, entry, expected):
    got = build(registry, [{"DistillationDistanceLoss": params}])(outputs(Student=STUDENT, Teacher=TEACHER), tensor(LABELS))
    assert value(got[entry]) == pytest.approx(expected, rel=1e-5)


def test_l2_loss_on_logits_and_on_named_features(registry):
    named = outputs(Student=STUDENT, Teacher=TEACHER)
    got = build(registry, [{"DistillationL2Loss": {"weight": 2.0}}])(named, tensor(LABELS))
    assert value(got["loss_l2_Student_Teacher"]) == pytest.approx(2 * ((STUDENT - TEACHER) ** 2).mean(), rel=1e-5)
    feats_s, feats_t = RNG.normal(size=(2, 3, 4, 4)).astype("float32"), RNG.normal(size=(2, 3, 4, 4)).astype("float32")
    staged = ModelOutputs({
        "Student": {"logits": tensor(STUDENT), "stage2": tensor(feats_s)},
        "Teacher": {"logits": tensor(TEACHER), "stage2": tensor(feats_t)},
    }, primary="Student")
    on_stage = build(registry, [{"DistillationL2Loss": {"key": "stage2"}}])(staged, tensor(LABELS))
    assert value(on_stage["loss"]) == pytest.approx(((feats_s - feats_t) ** 2).mean(), rel=1e-5)
    with pytest.raises(ConfigError, match="Loss.Train.0.DistillationL2Loss: named output 'stage3' not found; the model returned: logits, stage2"):
        build(registry, [{"DistillationL2Loss": {"key": "stage3"}}])(staged, tensor(LABELS))


def np_fsp(a, b):
    if a.shape[2] > b.shape[2]:  # 2x2 block means: what adaptive average pooling does at an exact ratio
        k = a.shape[2] // b.shape[2]
        a = a.reshape(a.shape[0], a.shape[1], b.shape[2], k, b.shape[3], k).mean(axis=(3, 5))
    n, c1, h, w = a.shape
    return np.einsum("nip,njp->nij", a.reshape(n, c1, h * w), b.reshape(n, b.shape[1], h * w)) / (h * w)


def test_fsp_loss_matches_numpy(registry):
    maps = {
        model: {"stage1": RNG.normal(size=(2, 3, 8, 8)).astype("float32"), "stage2": RNG.normal(size=(2, 4, 4, 4)).astype("float32"),
                "stage3": RNG.normal(size=(2, 5, 4, 4)).astype("float32")}
        for model in ("Student", "Teacher")
    }
    named = ModelOutputs({m: {k: tensor(v) for k, v in feats.items()} for m, feats in maps.items()}, primary="Student")
    loss = build(registry, [{"DistillationFSPLoss": {"feature_pairs": [["stage1", "stage2"], ["stage2", "stage3"]]}}])
    got = loss(named, tensor(LABELS))
    expected = sum(
        ((np_fsp(maps["Student"][a], maps["Student"][b]) - np_fsp(maps["Teacher"][a], maps["Teacher"][b])) ** 2).mean()
        for a, b in (("stage1", "stage2"), ("stage2", "stage3"))
    )
    assert value(got["loss_fsp_Student_Teacher"]) == pytest.approx(expected, rel=1e-5)
    maps["Teacher"]["stage3"] = RNG.normal(size=(2, 6, 4, 4)).astype("float32")
    named["Teacher"]["stage3"] = tensor(maps["Teacher"]["stage3"])
    with pytest.raises(ConfigError, match=r"FSP matrices of Student and Teacher for \(stage2, stage3\) differ in shape: \[2, 4, 5\] vs \[2, 4, 6\]"):
        loss(named, tensor(LABELS))


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"DistillationKLDivLoss": {"T": 2, "temperature": 3}}], "temperature and T are the same setting"),
        ([{"DistillationDKDLoss": {"temperature": 0}}], "temperature: expected a number > 0, found 0"),
        ([{"DistillationDMLLoss": {"act": "relu"}}], "act: expected 'softmax', 'sigmoid' or null, found 'relu'"),
        ([{"DistillationDistanceLoss": {"mode": "l3"}}], "mode: expected one of 'l2', 'l1', 'smooth_l1', found 'l3'"),
        ([{"DistillationFSPLoss": {"feature_pairs": ["stage1"]}}], "feature_pairs: expected a non-empty list of pairs"),
        ([{"DistillationGTCELoss": {"model_names": "Student"}}], "model_names: expected a non-empty list of model names"),
    ],
)
def test_bad_distillation_parameters_are_config_errors(registry, items, message):
    with pytest.raises(ConfigError, match=f"Loss.Train.0.{next(iter(items[0]))}: .*{message}"):
        build(registry, items)
