"""Helpers the loader runs its batches through: a background thread, and a check that
shared memory can hold the batches worker processes prepare."""
from __future__ import annotations

import queue
import shutil
import threading
import warnings
from typing import Any, Callable, Iterator

#: how many batches each worker prepares ahead (paddle.io.DataLoader's default)
PREFETCH_FACTOR = 2


def in_background(items: Iterator[Any], depth: int, start: Callable[[], None] = lambda: None) -> Iterator[Any]:
    """Iterate ``items`` in a daemon thread (which first calls ``start``), at most ``depth`` ahead;
    its exceptions re-raise here. Closing the returned generator (or dropping it) stops the thread.
    """
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                results.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            start()
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(("error", exc))

    threading.Thread(target=produce, name="corolla-loader", daemon=True).start()
    try:
        while True:
            kind, value = results.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def shared_memory_fits(batch_bytes: int, num_workers: int) -> bool:
    """Whether /dev/shm can hold the batches the workers prepare ahead; warn and say no otherwise."""
    needed = 2 * batch_bytes * num_workers * PREFETCH_FACTOR
    free = shm_free_bytes()
    if free is not None and free >= needed:
        return True
    have = "there is no /dev/shm" if free is None else f"/dev/shm has {free / 2**20:.0f} MiB free"
    warnings.warn(f"shared memory is too small for the loader: {have}, {num_workers} workers need about "
                  f"{needed / 2**20:.0f} MiB; passing batches without shared memory (slower). Enlarge /dev/shm "
                  "(docker: --shm-size=2g) or lower loader.num_workers / sampler.batch_size, or set "
                  "loader.use_shared_memory: false to silence this.", UserWarning, stacklevel=3)
    return False


def shm_free_bytes() -> int | None:
    """Free bytes in /dev/shm, or None where there is none."""
    try:
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return None
