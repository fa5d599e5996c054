"""The random source of data augmentation: a NumPy generator per thread.

Transforms draw from :func:`generator` at call time (never cache it). The
loader reseeds it from ``(seed, epoch, rank, worker)`` in the thread or worker
process that makes an epoch's batches, so an epoch's augmentations are the
same whether training ran straight through or resumed, workers never repeat
each other's draws, and two loaders working at once do not share draws.
"""
from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def generator() -> np.random.Generator:
    """The augmentation generator of the calling thread (unseeded until :func:`reseed`)."""
    current = getattr(_local, "generator", None)
    if current is None:
        current = _local.generator = np.random.default_rng()
    return current


def reseed(*key: int) -> None:
    """Give the calling thread a generator seeded from ``key`` (non-negative integers)."""
    _local.generator = np.random.default_rng([int(k) for k in key])
