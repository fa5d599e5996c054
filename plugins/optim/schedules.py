"""Learning-rate schedules named in ``Optimizer.lr.name``, as PaddleClas defines them.

Every builder takes the engine-made ``epochs`` and ``step_each_epoch`` plus the
config keys of ``Optimizer.lr``, and returns a ``paddle.optimizer.lr.LRScheduler``
with a ``by_epoch`` attribute: the engine steps it after every iteration, or
after every epoch when ``by_epoch: true``. Lengths given in epochs
(``decay_epochs``, ``step_size``, ``milestones``, ``warmup_epoch``) are
converted to iterations unless ``by_epoch`` is set.

``warmup_epoch`` (may be fractional) prepends a linear ramp from
``warmup_start_lr`` to the schedule's starting rate; the schedule proper starts
when the ramp ends, and its length excludes the warmup.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

from paddle.optimizer import lr as paddle_lr

from corolla.api import ConfigError


class _Steps:
    """Epoch-to-step arithmetic shared by the schedules."""

    def __init__(self, epochs: int, step_each_epoch: int, warmup_epoch: float, by_epoch: bool) -> None:
        if warmup_epoch < 0:
            raise ConfigError(f"Optimizer.lr.warmup_epoch: expected a number >= 0, found {warmup_epoch!r}")
        if warmup_epoch > epochs:
            warnings.warn(
                f"Optimizer.lr.warmup_epoch={warmup_epoch} exceeds Global.epochs={epochs}; "
                f"warming up for {epochs} epochs",
                UserWarning,
                stacklevel=3,
            )
            warmup_epoch = epochs
        self.by_epoch = by_epoch
        self.per_epoch = 1 if by_epoch else step_each_epoch
        self.warmup_epoch = warmup_epoch
        self.warmup_steps = round(warmup_epoch * self.per_epoch)
        self.total_steps = epochs * self.per_epoch

    def of(self, epochs: float) -> int:
        """``epochs`` as a number of scheduler steps."""
        return round(epochs * self.per_epoch)

    @property
    def decay_steps(self) -> int:
        return self.total_steps - self.warmup_steps


def _finish(
    schedule: paddle_lr.LRScheduler | float,
    steps: _Steps,
    learning_rate: float,
    warmup_start_lr: float,
    last_epoch: int,
) -> paddle_lr.LRScheduler:
    if steps.warmup_steps > 0:
        schedule = paddle_lr.LinearWarmup(
            learning_rate=schedule,
            warmup_steps=steps.warmup_steps,
            start_lr=warmup_start_lr,
            end_lr=learning_rate,
            last_epoch=last_epoch,
        )
    elif not isinstance(schedule, paddle_lr.LRScheduler):
        schedule = _ConstantLR(schedule, last_epoch=last_epoch)
    schedule.by_epoch = steps.by_epoch
    return schedule


class _ConstantLR(paddle_lr.LRScheduler):
    def get_lr(self) -> float:
        return self.base_lr


def Constant(
    *,
    epochs: int,
    step_each_epoch: int,
    learning_rate: float,
    warmup_epoch: float = 0,
    warmup_start_lr: float = 0.0,
    last_epoch: int = -1,
    by_epoch: bool = False,
) -> paddle_lr.LRScheduler:
    """A constant rate (after the optional warmup)."""
    steps = _Steps(epochs, step_each_epoch, warmup_epoch, by_epoch)
    return _finish(learning_rate, steps, learning_rate, warmup_start_lr, last_epoch)


def Cosine(
    *,
    epochs: int,
    step_each_epoch: int,
    learning_rate: float,
    eta_min: float = 0.0,
    warmup_epoch: float = 0,
    warmup_start_lr: float = 0.0,
    last_epoch: int = -1,
    by_epoch: bool = False,
) -> paddle_lr.LRScheduler:
    """``eta_min + (learning_rate - eta_min) * (1 + cos(pi * t / T)) / 2`` over the run after warmup."""
    steps = _Steps(epochs, step_each_epoch, warmup_epoch, by_epoch)
    schedule = (
        paddle_lr.CosineAnnealingDecay(learning_rate, T_max=steps.decay_steps, eta_min=eta_min, last_epoch=last_epoch)
        if steps.decay_steps > 0
        else learning_rate
    )
    return _finish(schedule, steps, learning_rate, warmup_start_lr, last_epoch)


def Linear(
    *,
    epochs: int,
    step_each_epoch: int,
    learning_rate: float,
    end_lr: float = 0.0,
    power: float = 1.0,
    cycle: bool = False,
    warmup_epoch: float = 0,
    warmup_start_lr: float = 0.0,
    last_epoch: int = -1,
    by_epoch: bool = False,
) -> paddle_lr.LRScheduler:
    """Polynomial decay ``(learning_rate - end_lr) * (1 - t / T) ** power + end_lr``
    (``power`` 1 is linear), registered as ``Linear`` and ``Polynomial``."""
    steps = _Steps(epochs, step_each_epoch, warmup_epoch, by_epoch)
    schedule = (
        paddle_lr.PolynomialDecay(
            learning_rate, decay_steps=steps.decay_steps, end_lr=end_lr, power=power, cycle=cycle, last_epoch=last_epoch
        )
        if steps.decay_steps > 0
        else learning_rate
    )
    return _finish(schedule, steps, learning_rate, warmup_start_lr, last_epoch)


def Step(
    *,
    epochs: int,
    step_each_epoch: int,
    learning_rate: float,
    step_size: float,
    gamma: float = 0.1,
    warmup_epoch: float = 0,
    warmup_start_lr: float = 0.0,
    last_epoch: int = -1,
    by_epoch: bool = False,
) -> paddle_lr.LRScheduler:
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""
    steps = _Steps(epochs, step_each_epoch, warmup_epoch, by_epoch)
    if steps.of(step_size) < 1:
        raise ConfigError(f"Optimizer.lr.step_size: expected at least one step, found {step_size!r}")
    schedule = paddle_lr.StepDecay(learning_rate, step_size=steps.of(step_size), gamma=gamma, last_epoch=last_epoch)
    return _finish(schedule, steps, learning_rate, warmup_start_lr, last_epoch)


def MultiStepDecay(
    *,
    epochs: int,
    step_each_epoch: int,
    learning_rate: float,
    milestones: Sequence[float],
    gamma: float = 0.1,
    warmup_epoch: float = 0,
    warmup_start_lr: float = 0.0,
    last_epoch: int = -1,
    by_epoch: bool = False,
) -> paddle_lr.LRScheduler:
    """Multiply the rate by ``gamma`` at each of the increasing ``milestones`` (epochs)."""
    steps = _Steps(epochs, step_each_epoch, warmup_epoch, by_epoch)
    schedule = paddle_lr.MultiStepDecay(
        learning_rate, milestones=[steps.of(m) for m in milestones], gamma=gamma, last_epoch=last_epoch
    )
    return _finish(schedule, steps, learning_rate, warmup_start_lr, last_epoch)


def Piecewise(
    *,
    epochs: int,
    step_each_epoch: int,
    decay_epochs: Sequence[float],
    values: Sequence[float],
    warmup_epoch: float = 0,
    warmup_start_lr: float = 0.0,
    last_epoch: int = -1,
    by_epoch: bool = False,
    learning_rate: float | None = None,
) -> paddle_lr.LRScheduler:
    """``values[i]`` from epoch ``decay_epochs[i-1]`` on (``values[0]`` before the first).

    ``learning_rate``, which many PaddleClas configs give here too, is not used:
    ``values[0]`` is the starting rate (a warning says so when the two differ).
    """
    if learning_rate is not None and learning_rate != values[0]:
        warnings.warn(
            f"Optimizer.lr.learning_rate={learning_rate} is ignored by Piecewise: "
            f"it starts at values[0]={values[0]}",
            UserWarning,
            stacklevel=2,
        )
    if len(values) != len(decay_epochs) + 1:
        raise ConfigError(
            f"Optimizer.lr.values: expected {len(decay_epochs) + 1} values (one more than decay_epochs "
            f"{list(decay_epochs)}), found {len(values)}: {list(values)}"
        )
    steps = _Steps(epochs, step_each_epoch, warmup_epoch, by_epoch)
    schedule = paddle_lr.PiecewiseDecay(
        boundaries=[steps.of(e) for e in decay_epochs], values=list(values), last_epoch=last_epoch
    )
    return _finish(schedule, steps, values[0], warmup_start_lr, last_epoch)


def Exponential(
    *,
    epochs: int,
    step_each_epoch: int,
    learning_rate: float,
    gamma: float,
    warmup_epoch: float = 0,
    warmup_start_lr: float = 0.0,
    last_epoch: int = -1,
    by_epoch: bool = False,
) -> paddle_lr.LRScheduler:
    """``learning_rate * gamma ** e`` after ``e`` epochs (fractional within an epoch
    unless ``by_epoch``)."""
    steps = _Steps(epochs, step_each_epoch, warmup_epoch, by_epoch)
    per_step = math.pow(gamma, 1.0 / steps.per_epoch)
    schedule = paddle_lr.ExponentialDecay(learning_rate, gamma=per_step, last_epoch=last_epoch)
    return _finish(schedule, steps, learning_rate, warmup_start_lr, last_epoch)
