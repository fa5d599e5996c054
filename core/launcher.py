"""This process's place in a ``paddle.distributed.launch`` job, read from the
variables the launcher sets (rank 0 of 1 when not launched).

Read from the environment rather than ``paddle.distributed`` so that the answer
never depends on what an earlier job in the same process initialised.
"""
from __future__ import annotations

import os


def launched_rank() -> int:
    """This process's rank (``PADDLE_TRAINER_ID``)."""
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def launched_world_size() -> int:
    """How many processes the launcher started (``PADDLE_TRAINERS_NUM``)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
