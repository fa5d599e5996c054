"""Stand-ins for the arguments the engine passes itself, so that the config plan can
make a component of a cheap kind before anything real exists, and the values its
factory checks (a sampler's ``batch_size``, a schedule's ``warmup_epoch``, an
optimizer's ``beta1``) are checked by ``corolla config`` as by ``train``."""
from __future__ import annotations

from typing import Any

#: the stand-in dataset's size, and the stand-in number of steps in an epoch: large, so
#: that a length given in epochs (a schedule's ``step_size: 0.5``) is not refused as less
#: than one step where the real loader would make it several
STAND_IN_SIZE = 1024


def stand_ins(kind: str, epochs: int) -> dict[str, Any]:
    """The injected arguments of a trial component of ``kind`` in a run of ``epochs``."""
    if kind == "sampler":
        return {"dataset": range(STAND_IN_SIZE), "seed": 0, "rank": 0, "world_size": 1}
    if kind == "lr_schedule":
        return {"epochs": epochs, "step_each_epoch": STAND_IN_SIZE}
    if kind == "optimizer":
        import paddle  # only a config with an Optimizer pays for the import

        return {"model": paddle.nn.Linear(1, 1), "learning_rate": 0.1}
    return {}
