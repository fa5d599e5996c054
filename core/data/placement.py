"""Where a job runs: device, CPU threads, process rank and world size, and seeds.

The rank and world size are read from the variables ``paddle.distributed.launch``
sets (rank 0 of 1 when not launched), so that the answer never depends on what an
earlier job in the same process initialised. Paddle is imported on use: the
loader and the CLI read the rank without it.
"""
from __future__ import annotations

import os
import random
import secrets
import sys
import warnings

import attrs
import numpy as np


#: ``OMP_NUM_THREADS`` as the user set it, read before Paddle is imported
#: (importing Paddle sets it to 1 when unset, so afterwards a 1 means nothing).
USER_OMP_THREADS: str | None = None if "paddle" in sys.modules else os.environ.get("OMP_NUM_THREADS")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def launched_rank() -> int:
    """This process's rank (``PADDLE_TRAINER_ID``)."""
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def launched_world_size() -> int:
    """How many processes the launcher started (``PADDLE_TRAINERS_NUM``)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


@attrs.frozen
class Environment:
    """The process's place in the job."""

    device: str
    rank: int
    world_size: int
    seed: int

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_main_process() -> bool:
    """Whether this is rank 0 of ``paddle.distributed.launch`` (or no launcher at all)."""
    return launched_rank() == 0


def setup_environment(device: str, seed: int | None, *, distributed: bool = True) -> Environment:
    """Select the device, size the CPU thread pool, join the process group when
    launched with several processes, and seed every generator.

    ``seed`` None draws a fresh seed (recorded in checkpoints so that a resume
    continues the same random streams). All ranks use the same seed here, so
    that they build identical models.
    """
    import paddle

    device = resolve_device(device)
    world_size = launched_world_size() if distributed else 1
    paddle.set_device(device)  # "gpu" picks the launcher's card for this rank
    if device == "cpu":
        set_cpu_threads(world_size)
    rank = 0
    if world_size > 1:
        paddle.distributed.init_parallel_env()
        rank = paddle.distributed.get_rank()
    if seed is None:
        seed = _shared_random_seed(world_size)
    seed_everything(seed)
    return Environment(device=device, rank=rank, world_size=world_size, seed=seed)


def resolve_device(device: str) -> str:
    """The device a job runs on: ``device``, except that ``gpu`` on a Paddle build without
    CUDA runs on the CPU, with one warning that says so. PaddleClas configs all say
    ``device: gpu``; every verb (train, eval, infer, export, predict) applies this rule."""
    if device != "gpu":
        return device
    import paddle

    if paddle.device.is_compiled_with_cuda():
        return device
    warnings.warn("Global.device: 'gpu', but this Paddle build has no CUDA support: running on the CPU "
                  "(set Global.device: cpu to say so, or install the gpu extra: pip install 'corolla[gpu]')",
                  UserWarning, stacklevel=3)
    return "cpu"


def cpu_thread_count(processes_per_machine: int = 1) -> int:
    """The CPU threads one process should use: ``OMP_NUM_THREADS`` when the user
    set it before Paddle was imported, else the available cores shared among the
    processes of this machine."""
    if USER_OMP_THREADS and USER_OMP_THREADS.isdigit() and int(USER_OMP_THREADS) > 0:
        return int(USER_OMP_THREADS)
    return max(1, len(os.sched_getaffinity(0)) // max(1, processes_per_machine))


def set_cpu_threads(processes_per_machine: int = 1) -> int:
    """Size Paddle's CPU thread pool (Paddle runs single-threaded unless told otherwise)."""
    import paddle

    threads = cpu_thread_count(processes_per_machine)
    paddle.base.core.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and Paddle's generators."""
    import paddle

    random.seed(seed)
    np.random.seed(seed % 2**32)
    paddle.seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch on one rank: a function of the run's seed only, so
    that training resumed at an epoch boundary draws the same random numbers
    (dropout, augmentation) as a run that never stopped."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _shared_random_seed(world_size: int) -> int:
    import paddle

    seed = secrets.randbits(31)
    if world_size > 1:  # every rank must agree: take rank 0's
        value = paddle.to_tensor([seed], dtype="int64")
        paddle.distributed.broadcast(value, src=0)
        seed = int(value.item())
    return seed
