"""Batch samplers named in ``DataLoader.<Mode>.sampler.name``, with PaddleClas's names and keys.

- ``DistributedBatchSampler`` (the default): batches of ``batch_size``, shuffled by
  ``(seed, epoch)``, each process of a multi-process run taking its share.
- ``BatchSampler``: the same, but every process sees the whole set.
- ``RASampler``: repeated augmentation (DeiT): each image ``num_repeats`` times per
  epoch, the copies dealt to different processes (so augmented differently).
- ``MultiScaleSampler``: batches whose image size (and so batch size) varies, for
  multi-scale training (PP-LCNetV2, MobileViTV3).

The engine passes ``dataset``, ``seed``, ``rank`` and ``world_size``; see
:class:`corolla.api.Sampler`.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from corolla.api import ConfigError, EpochBatchSampler


def _batch_size(value: Any, key: str = "batch_size") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: expected an integer >= 1, found {value!r}")
    return value


class DistributedBatchSampler(EpochBatchSampler):
    """Batches of ``batch_size`` indices; ``shuffle`` draws the order from ``(seed, epoch)``;
    ``drop_last`` drops a last, smaller batch. With several processes each takes every
    ``world_size``-th index, padded by repeating the start so all get as many (as Paddle's)."""

    def __init__(self, *, dataset: Any, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                 seed: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(len(dataset), _batch_size(batch_size), shuffle=bool(shuffle), drop_last=bool(drop_last),
                         seed=seed, rank=rank, world_size=world_size)


class BatchSampler(DistributedBatchSampler):
    """As :class:`DistributedBatchSampler`, but every process iterates over the whole set."""

    def __init__(self, *, dataset: Any, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                 seed: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(dataset=dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                         seed=seed, rank=0, world_size=1)


class RASampler(EpochBatchSampler):
    """Repeated augmentation, PaddleClas's ``RASampler`` (DeiT's): each image appears
    ``num_repeats`` times in an epoch's order, consecutive copies going to different
    processes; each process then keeps ``floor(N / selected_round) * selected_round /
    world_size`` of its indices, so an epoch lasts about as long as without repeats."""

    def __init__(self, *, dataset: Any, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                 num_repeats: int = 3, selected_round: int = 256, seed: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(len(dataset), _batch_size(batch_size), shuffle=bool(shuffle), drop_last=bool(drop_last),
                         seed=seed, rank=rank, world_size=world_size)
        self.num_repeats = _batch_size(num_repeats, "num_repeats")
        self.selected_round = _batch_size(selected_round, "selected_round")
        self.total = math.ceil(self.size * self.num_repeats / world_size) * world_size
        self.num_samples = self.size // self.selected_round * self.selected_round // world_size
        if self.num_samples == 0:
            raise ConfigError(f"DataLoader sampler RASampler: an epoch keeps floor({self.size} images / selected_round "
                              f"{self.selected_round}) x {self.selected_round} of them, which is none; "
                              "lower selected_round (PaddleClas would train on nothing)")

    def indices(self) -> np.ndarray:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size) if self.shuffle else np.arange(self.size)
        repeated = np.repeat(order, self.num_repeats)
        repeated = np.concatenate([repeated, repeated[:self.total - len(repeated)]])
        return repeated[self.rank:self.total:self.world_size][:self.num_samples]


class MultiScaleSampler(EpochBatchSampler):
    """PaddleClas's ``MultiScaleSampler``: each batch at one of ``scales`` (ints, or
    ``[width, height]`` pairs), with as many images as keep the pixels of a batch of
    ``first_bs`` images at the first scale. In training (``is_training``) the scales are
    rounded down to multiples of ``divided_factor``, each batch's scale is drawn (once per
    run, from the seed, so every epoch and every process has the same sequence) and the
    images are shuffled per epoch; otherwise every batch is ``first_bs`` images at the
    first scale. A last batch is filled up with images from the start of the order.

    The transforms of ``transform_ops`` that set a ``size`` (RandCropImage, ...) make each
    batch's size; use it with ``ImageNetDataset`` or its PaddleClas name ``MultiScaleDataset``.
    """

    #: the config check requires a transform that sets the size
    varies_image_size = True

    def __init__(self, *, dataset: Any, scales: list, first_bs: int, divided_factor: int = 32, is_training: bool = True,
                 seed: int, rank: int = 0, world_size: int = 1) -> None:
        first_bs = _batch_size(first_bs, "first_bs")
        super().__init__(len(dataset), first_bs, shuffle=bool(is_training), drop_last=False,
                         seed=seed, rank=rank, world_size=world_size)
        sizes = [_scale(value) for value in scales] if isinstance(scales, list) and scales else None
        if sizes is None:
            raise ValueError(f"scales: expected a list of sizes (ints or [width, height]), found {scales!r}")
        factor = _batch_size(divided_factor, "divided_factor")
        (base_w, base_h) = sizes[0]
        if is_training:
            sizes = [(max(factor, w // factor * factor), max(factor, h // factor * factor)) for w, h in sizes]
            pixels = base_w * base_h * first_bs
            choices = [(w, h, max(1, int(pixels / (w * h)))) for w, h in sizes]
            rng = np.random.default_rng([seed, 0x5CA1E])
            self.batches: list[tuple[int, int, int]] = []
            covered = 0
            while covered < self.num_samples:
                self.batches.append(choices[int(rng.integers(len(choices)))])
                covered += self.batches[-1][2]
        else:
            self.batches = [(base_w, base_h, first_bs)] * math.ceil(self.num_samples / first_bs)
        self.image_sizes = sorted({(w, h) for w, h, _ in self.batches})

    def __iter__(self) -> Iterator[list]:
        indices = self.indices().tolist()
        start = 0
        for width, height, count in self.batches:
            batch = indices[start:start + count]
            batch += indices[:count - len(batch)]
            start += count
            yield [(index, width, height) for index in batch]

    def __len__(self) -> int:
        return len(self.batches)


def _scale(value: Any) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        return value[0], value[1]
    raise ValueError(f"scales: expected positive ints or [width, height] pairs, found {value!r}")
