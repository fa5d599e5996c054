"""Optimizers and lr schedules: PaddleClas's formulas, weight decay, clipping, lr multipliers."""
from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

import corolla
from corolla.engine.builders import build_optimizer
from corolla.plugin.errors import ComponentArgumentError, ConfigError
from corolla.plugins.optim import optimizers, schedules
from corolla.config.planner import read_plan


def lrs(schedule, n: int) -> list[float]:
    values = []
    for _ in range(n):
        values.append(schedule())
        schedule.step()
    return values


def test_cosine_with_linear_warmup_per_iteration():
    s = schedules.Cosine(epochs=4, step_each_epoch=2, learning_rate=0.1, warmup_epoch=1, warmup_start_lr=0.02)
    assert s.by_epoch is False
    got = lrs(s, 8)
    # warmup: 2 steps from 0.02 to 0.1; then cosine over the remaining 6 steps
    expected = [0.02, 0.06] + [0.05 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_cosine_by_epoch_counts_epochs():
    s = schedules.Cosine(epochs=4, step_each_epoch=100, learning_rate=0.1, by_epoch=True)
    assert s.by_epoch is True
    np.testing.assert_allclose(lrs(s, 4), [0.05 * (1 + math.cos(math.pi * k / 4)) for k in range(4)], rtol=1e-6)


def test_piecewise_boundaries_are_epochs():
    s = schedules.Piecewise(epochs=3, step_each_epoch=2, decay_epochs=[1, 2], values=[0.1, 0.01, 0.001])
    np.testing.assert_allclose(lrs(s, 6), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_piecewise_accepts_the_learning_rate_key_of_paddleclas_configs():
    same = schedules.Piecewise(epochs=2, step_each_epoch=1, decay_epochs=[1], values=[0.1, 0.01], learning_rate=0.1)
    np.testing.assert_allclose(lrs(same, 2), [0.1, 0.01])
    with pytest.warns(UserWarning, match=r"learning_rate=0.5 is ignored by Piecewise: it starts at values\[0\]=0.1"):
        other = schedules.Piecewise(epochs=2, step_each_epoch=1, decay_epochs=[1], values=[0.1, 0.01],
                                    learning_rate=0.5)
    np.testing.assert_allclose(lrs(other, 2), [0.1, 0.01])


def test_piecewise_needs_one_more_value_than_boundaries():
    with pytest.raises(ConfigError, match=r"Optimizer.lr.values: expected 3 values .* found 2"):
        schedules.Piecewise(epochs=3, step_each_epoch=2, decay_epochs=[1, 2], values=[0.1, 0.01])


def test_step_linear_exponential_and_constant():
    step = schedules.Step(epochs=4, step_each_epoch=2, learning_rate=0.1, step_size=1, gamma=0.5)
    np.testing.assert_allclose(lrs(step, 6), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    linear = schedules.Linear(epochs=2, step_each_epoch=2, learning_rate=0.1, end_lr=0.0)
    np.testing.assert_allclose(lrs(linear, 4), [0.1, 0.075, 0.05, 0.025], atol=1e-9)
    exponential = schedules.Exponential(epochs=3, step_each_epoch=2, learning_rate=0.1, gamma=0.25)
    np.testing.assert_allclose(lrs(exponential, 5), [0.1, 0.05, 0.025, 0.0125, 0.00625], rtol=1e-6)
    constant = schedules.Constant(epochs=2, step_each_epoch=3, learning_rate=0.3)
    assert lrs(constant, 3) == [0.3, 0.3, 0.3]


def test_warmup_longer_than_training_is_capped_with_a_warning():
    with pytest.warns(UserWarning, match="warmup_epoch=5 exceeds Global.epochs=2"):
        s = schedules.Cosine(epochs=2, step_each_epoch=1, learning_rate=0.1, warmup_epoch=5)
    np.testing.assert_allclose(lrs(s, 2), [0.0, 0.05])


class Tiny(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(2, 2, weight_attr=paddle.nn.initializer.Constant(1.0),
                                   bias_attr=paddle.nn.initializer.Constant(1.0))
        self.head = paddle.nn.Linear(2, 1, weight_attr=paddle.ParamAttr(learning_rate=0.5, initializer=paddle.nn.initializer.Constant(1.0)),
                                     bias_attr=False)

    def forward(self, x):
        return self.head(self.fc(x))


def one_step(optimizer, model) -> dict[str, np.ndarray]:
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    model(paddle.ones([1, 2])).sum().backward()
    grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    optimizer.step()
    optimizer.clear_grad()
    return before, grads, {n: p.numpy() for n, p in model.named_parameters()}


def test_momentum_l2_decay_skips_named_parameters_and_respects_lr_multipliers():
    model = Tiny()
    opt = optimizers.Momentum(model=model, learning_rate=0.1, momentum=0.9,
                              regularizer={"name": "L2", "coeff": 0.01}, no_weight_decay_name="bias")
    before, grads, after = one_step(opt, model)
    # first momentum step: w - lr * mult * (g + coeff * w); biases get no decay
    np.testing.assert_allclose(after["fc.weight"], before["fc.weight"] - 0.1 * (grads["fc.weight"] + 0.01 * before["fc.weight"]), rtol=1e-6)
    np.testing.assert_allclose(after["fc.bias"], before["fc.bias"] - 0.1 * grads["fc.bias"], rtol=1e-6)
    np.testing.assert_allclose(after["head.weight"], before["head.weight"] - 0.05 * (grads["head.weight"] + 0.01 * before["head.weight"]), rtol=1e-6)


def test_clip_norm_limits_each_gradient():
    model = Tiny()
    opt = optimizers.SGD(model=model, learning_rate=1.0, clip_norm=0.1)
    before, grads, after = one_step(opt, model)
    step = before["fc.weight"] - after["fc.weight"]
    assert np.linalg.norm(grads["fc.weight"]) > 0.1
    np.testing.assert_allclose(np.linalg.norm(step), 0.1, rtol=1e-5)


def test_adamw_takes_weight_decay_not_a_regularizer():
    with pytest.raises(ConfigError, match="AdamW decays weights itself"):
        optimizers.AdamW(model=Tiny(), learning_rate=0.1, regularizer={"name": "L2", "coeff": 0.1})
    with pytest.raises(ConfigError, match="Optimizer.regularizer: expected"):
        optimizers.Momentum(model=Tiny(), learning_rate=0.1, regularizer={"name": "L3", "coeff": 0.1})


def test_build_optimizer_from_config_sections():
    registry = corolla.load_registry()
    model = Tiny()
    for lr, first in (({"name": "Piecewise", "decay_epochs": [1], "values": [0.2, 0.02]}, 0.2),
                      ({"learning_rate": 0.3}, 0.3), (0.4, 0.4)):
        plan = read_plan({"Optimizer": {"name": "RMSProp", "lr": lr}}, registry)
        opt, schedule = build_optimizer(plan, model, epochs=2, steps_per_epoch=3)
        assert isinstance(opt, paddle.optimizer.RMSProp)
        assert opt.get_lr() == pytest.approx(first)
        assert schedule.by_epoch is False
    with pytest.raises(ConfigError, match="Optimizer: missing key 'lr'"):
        read_plan({"Optimizer": {"name": "SGD"}}, registry)


def test_validation_checks_optimizer_and_schedule_arguments():
    registry = corolla.load_registry()
    config = {"Optimizer": {"name": "Momentum", "momentun": 0.9, "lr": {"name": "Cosine", "learning_rate": 0.1}}}
    with pytest.raises(ComponentArgumentError, match=r"Optimizer.momentun: .*Did you mean 'momentum'"):
        read_plan(config, registry)
    config = {"Optimizer": {"name": "Momentum", "lr": {"name": "Cosine", "learning_rat": 0.1}}}
    with pytest.raises(ComponentArgumentError, match=r"Optimizer.lr.learning_rat"):
        read_plan(config, registry)
