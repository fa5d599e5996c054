"""Metrics: top-k with unlabeled rows and soft labels, distillation keys, TPR at FPR."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from corolla.plugin.outputs import ModelOutputs
from corolla.plugins.metrics.classification import DistillationTopkAcc, TopkAcc, TprAtFpr

LOGITS = np.array([
    [0.1, 0.7, 0.2],   # top1 1, top2 {1, 2}
    [0.5, 0.2, 0.3],   # top1 0, top2 {0, 2}
    [0.2, 0.3, 0.5],   # top1 2, top2 {2, 1}
    [0.6, 0.3, 0.1],   # unlabeled
], dtype="float32")


def test_topk_counts_only_labeled_rows_and_accumulates():
    metric = TopkAcc(topk=[1, 2])
    batch = metric.update(paddle.to_tensor(LOGITS), paddle.to_tensor([1, 2, 0, -1], dtype="int64"))
    assert batch == {"top1": pytest.approx(1 / 3), "top2": pytest.approx(2 / 3)}
    metric.update(paddle.to_tensor(LOGITS[:1]), paddle.to_tensor([[0]], dtype="int64"))  # [N, 1] labels
    assert metric.result() == {"top1": pytest.approx(1 / 4), "top2": pytest.approx(2 / 4)}
    metric.reset()
    assert metric.result() == {}


def test_topk_skips_soft_labels_and_clamps_k_to_classes_with_one_warning():
    metric = TopkAcc(topk=(1, 3, 5))
    soft = paddle.to_tensor(np.full((4, 3), 1 / 3, dtype="float32"))
    assert metric.update(paddle.to_tensor(LOGITS), soft) == {}
    with pytest.warns(UserWarning, match=r"TopkAcc.topk: top5 counts every sample as correct: the model has 3 classes") as caught:
        assert metric.update({"logits": paddle.to_tensor(LOGITS[:3])}, paddle.to_tensor([1, 1, 1])) == {
            "top1": pytest.approx(1 / 3), "top3": 1.0, "top5": 1.0}
        metric.update(paddle.to_tensor(LOGITS[:3]), paddle.to_tensor([1, 1, 1]))
    assert len(caught) == 1
    with pytest.raises(ValueError, match="topk"):
        TopkAcc(topk=[0])


def test_distillation_topk_reads_the_named_model():
    outputs = ModelOutputs({"Teacher": paddle.to_tensor(LOGITS[:3]), "Student": paddle.to_tensor(LOGITS[:3, ::-1].copy())},
                           primary="Student")
    labels = paddle.to_tensor([1, 0, 2])
    assert DistillationTopkAcc(model_key="Teacher", topk=[1]).update(outputs, labels) == {"top1": 1.0}
    assert DistillationTopkAcc(model_key="Student", topk=[1]).update(outputs, labels)["top1"] == pytest.approx(1 / 3)
    with pytest.raises(KeyError, match="model_key 'Assistant'"):
        DistillationTopkAcc(model_key="Assistant").update(outputs, labels)


def test_tpr_at_fpr_matches_a_brute_force_search():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=300)
    logits = rng.normal(size=(300, 2)).astype("float32")
    logits[:, 1] += 1.5 * labels
    metric = TprAtFpr(max_fpr=0.05)
    for start in range(0, 300, 64):
        metric.update(paddle.to_tensor(logits[start:start + 64]), paddle.to_tensor(labels[start:start + 64]))
    probs = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
    best, best_t = 0.0, 0.0
    for t in np.arange(10000) / 10000:
        tpr = np.mean(probs[labels == 1] > t)
        fpr = np.mean(probs[labels == 0] > t)
        if fpr <= 0.05 and tpr > best:
            best, best_t = tpr, t
    result = metric.result()
    assert result["tpr_at_fpr"] == pytest.approx(best)
    assert 0.2 < best < 1.0 and result["threshold"] == pytest.approx(best_t)
