"""The loss terms of the training steps, read back to the host only every few steps.

Reading a value computed on the GPU makes the host wait for the device to finish all
queued work, and the next step's kernels cannot be queued meanwhile. So on GPU the
engine keeps each step's terms on the device, stacked into one small Tensor, and reads
them all at once (one copy, one all-reduce across ranks) on logging steps; on CPU, where
nothing runs ahead, it reads them every step as before. Every step's values are still
read, so the epoch averages are exact and a NaN is reported at the step it appeared.
"""
from __future__ import annotations

from typing import Mapping

import attrs
import paddle

from corolla.engine.collectives import sum_over_ranks


@attrs.frozen
class StepInfo:
    """Where a step was: for the epoch averages and the message of a diverged run."""

    step: int
    global_step: int
    lr: float
    batch: int


@attrs.frozen
class StepLosses:
    """A step's loss terms as read, and how many of its rows were labeled."""

    info: StepInfo
    values: dict[str, float]
    labeled: float


class LossLog:
    """Steps' loss terms, kept on the device until :meth:`read`; ``every`` steps between reads."""

    def __init__(self, world_size: int, every: int) -> None:
        self.world_size = world_size
        self.every = every
        self._pending: list[tuple[StepInfo, list[str], paddle.Tensor]] = []

    def add(self, losses: Mapping[str, paddle.Tensor], info: StepInfo, labeled: paddle.Tensor) -> None:
        """Keep this step's terms and its ``labeled`` row count (detached float32 scalars
        stacked on the device; no wait)."""
        names = list(losses)
        scalars = [losses[n].detach().astype("float32").reshape([]) for n in names]
        stacked = paddle.stack([*scalars, labeled.astype("float32").reshape([])])
        self._pending.append((info, names, stacked))

    def due(self, step: int, last_step: int) -> bool:
        """Whether step ``step`` of an epoch of ``last_step`` steps reads: every ``every``-th and the last."""
        return step % self.every == 0 or step == last_step

    def read(self) -> list[StepLosses]:
        """Each pending step's terms as floats and its labeled rows (averaged over ranks), oldest
        first; empties the log. All ranks must read at the same steps (an all-reduce)."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        flat = paddle.concat([stacked for _, _, stacked in pending])
        values = (sum_over_ranks(flat, self.world_size).numpy() / self.world_size).tolist()
        rows, offset = [], 0
        for info, names, _ in pending:
            terms = values[offset:offset + len(names) + 1]
            rows.append(StepLosses(info, dict(zip(names, terms)), terms[-1]))
            offset += len(names) + 1
        return rows
