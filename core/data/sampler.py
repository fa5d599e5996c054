"""Which samples go into which batch: shuffled by ``(seed, epoch)``, dealt between ranks."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np


class EpochBatchSampler:
    """Batches of dataset indices, shuffled by ``(seed, epoch)``; with ``world_size > 1`` each rank
    takes every ``world_size``-th index, the order padded by repeating its start so that all ranks
    get the same number (as Paddle's DistributedBatchSampler)."""

    def __init__(self, size: int, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.size, self.batch_size = size, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world_size = rank, world_size
        self.num_samples = math.ceil(size / world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> np.ndarray:
        """This rank's sample indices for the current epoch, in order."""
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size) if self.shuffle else np.arange(self.size)
        padding = self.num_samples * self.world_size - self.size
        if padding:
            order = np.concatenate([order, np.resize(order, padding)])
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        indices = self.indices().tolist()
        for start in range(0, len(indices), self.batch_size):
            batch = indices[start:start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def last_batch(self) -> int:
        """The samples of an epoch's last batch when it is smaller than the others (else 0)."""
        return 0 if self.drop_last else self.num_samples % self.batch_size
