"""``build_dataloader``: a ``DataLoader.<Mode>`` section -> batches of ``(images, labels)`` paddle Tensors.

The section has PaddleClas's layout::

    DataLoader:
      Train:
        dataset: {name: ImageNetDataset, image_root: ..., cls_label_path: ...,
                  transform_ops: [...], batch_transform_ops: [...]}
        sampler: {name: DistributedBatchSampler, batch_size: 64, drop_last: False, shuffle: True}
        loader: {num_workers: 4, use_shared_memory: True}

Images come as float32 NCHW; labels as int64 ``[N]`` (-1 for unlabeled
samples) or float32 ``[N, C]`` (multi-label, or soft labels after Mixup and
Cutmix). Samples stay uint8 HWC until the batch is complete; then
normalisation and the other batch-capable transforms run once, vectorised
(:mod:`corolla.data.pipeline`).

Shuffling is seeded by ``(seed, epoch)`` and augmentation by ``(seed, epoch,
rank, worker)``, so an epoch is the same whether training ran straight or
resumed (call ``set_epoch`` as the run's epoch counter says). Bad data is
never replaced by another sample: a missing or undecodable image is an error
naming its list line, unless ``loader.skip_bad_images`` is true, which skips
such images and warns with their count at the end of each epoch.

With ``num_workers: 0`` batches are made in the calling process (Paddle
3.3's single-process DataLoader hangs when a dataset raises); with workers,
``paddle.io.DataLoader`` runs the same code in worker processes.
"""
from __future__ import annotations

import math
import queue
import shutil
import threading
import traceback
import warnings
from functools import partial
from typing import Any, Callable, Iterator, Mapping, Sequence

import attrs
import numpy as np

from corolla.config.load import get_path
from corolla.plugin.errors import ConfigError, CorollaError, DataError
from corolla.data.placement import launched_rank, launched_world_size
from corolla.data.pipeline import Pipeline, UnreadableImageError, build_batch_transforms, build_pipeline
from corolla.data.randomness import reseed
from corolla.plugin.registry import Registry
from corolla.config.schema import boolean, choice, integer, optional, setting, structure
from corolla.config.specs import named_spec

#: PaddleClas's sampler names; DistributedBatchSampler splits the data between processes
SAMPLERS = ("DistributedBatchSampler", "BatchSampler")
#: how many batches each worker prepares ahead (paddle.io.DataLoader's default)
PREFETCH_FACTOR = 2


class SkippedImagesWarning(UserWarning):
    """Images that could not be read were skipped (``loader.skip_bad_images``)."""


@attrs.frozen
class SamplerSettings:
    """``DataLoader.<Mode>.sampler``."""

    name: str = setting("DistributedBatchSampler", choice(*SAMPLERS))
    batch_size: int | None = setting(None, optional(integer(1)))
    drop_last: bool = setting(False, boolean)
    shuffle: bool = setting(False, boolean)


@attrs.frozen
class LoaderSettings:
    """``DataLoader.<Mode>.loader``; ``skip_bad_images`` is corolla's."""

    num_workers: int = setting(0, integer(0))
    use_shared_memory: bool = setting(True, boolean)
    skip_bad_images: bool = setting(False, boolean)


# --- building -------------------------------------------------------------------------


def build_dataset(config: Mapping[str, Any], mode: str, registry: Registry) -> tuple[Any, Pipeline]:
    """The dataset of ``DataLoader.<mode>`` (its transforms built) and its preprocessing pipeline."""
    key_path = f"DataLoader.{mode}.dataset"
    section = _mode_section(config, mode)
    spec = named_spec(section.get("dataset"), key_path)
    params = {k: v for k, v in spec.params.items() if k != "batch_transform_ops"}
    if params.get("transform_ops") is None:
        raise ConfigError(f"{key_path}.transform_ops: missing; the loader needs at least '- DecodeImage:'")
    pipeline = build_pipeline(params["transform_ops"], registry, f"{key_path}.transform_ops")
    params["transform_ops"] = pipeline
    return registry.build("dataset", spec.name, params, key_path=key_path), pipeline


def class_num_of(config: Mapping[str, Any]) -> int | None:
    """``Arch.class_num``, or the common ``class_num`` of a DistillationModel's sub-models."""
    value = get_path(config, "Arch.class_num")
    if value is None:
        found = {params.get("class_num") for item in get_path(config, "Arch.models", []) or []
                 if isinstance(item, Mapping) for params in item.values() if isinstance(params, Mapping)}
        value = found.pop() if len(found) == 1 else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_dataloader(config: Mapping[str, Any], mode: str, registry: Registry, *, seed: int | None = None,
                     rank: int | None = None, world_size: int | None = None) -> Loader:
    """Build the loader of ``DataLoader.<mode>`` (``"Train"`` or ``"Eval"``).

    ``seed`` defaults to ``Global.seed``, else 0. ``rank`` and
    ``world_size`` default to Paddle's distributed environment; only
    ``DistributedBatchSampler`` splits the data between ranks.
    """
    section = _mode_section(config, mode)
    sampler_settings = structure(SamplerSettings, section.get("sampler"), f"DataLoader.{mode}.sampler")
    if sampler_settings.batch_size is None:
        raise ConfigError(f"DataLoader.{mode}.sampler.batch_size: missing (the number of images per batch)")
    loader_settings = structure(LoaderSettings, section.get("loader"), f"DataLoader.{mode}.loader")
    class_num = class_num_of(config)
    dataset, pipeline = build_dataset(config, mode, registry)
    batch_ops = build_batch_transforms(get_path(section, "dataset.batch_transform_ops"), registry,
                                       f"DataLoader.{mode}.dataset.batch_transform_ops", class_num=class_num)
    summary = describe_check(dataset, class_num, skip_bad_images=loader_settings.skip_bad_images)
    if rank is None or world_size is None:
        rank, world_size = launched_rank(), launched_world_size()
    if sampler_settings.name == "BatchSampler":
        rank, world_size = 0, 1
    if seed is None:
        seed = get_path(config, "Global.seed") or 0
    sampler = EpochBatchSampler(len(dataset), sampler_settings.batch_size, shuffle=sampler_settings.shuffle,
                                drop_last=sampler_settings.drop_last, seed=seed, rank=rank, world_size=world_size)
    image_shape = get_path(config, "Global.image_shape") or [3, 224, 224]
    return Loader(dataset, pipeline, sampler, batch_ops, loader_settings, seed=seed, mode=mode,
                  summary=summary, image_shape=image_shape)


def _mode_section(config: Mapping[str, Any], mode: str) -> Mapping[str, Any]:
    section = get_path(config, f"DataLoader.{mode}")
    if not isinstance(section, Mapping):
        modes = ", ".join(get_path(config, "DataLoader", {}) or {}) or "none"
        raise ConfigError(f"DataLoader.{mode}: missing section (DataLoader has: {modes})")
    return section


def describe_check(dataset: Any, class_num: int | None, *, skip_bad_images: bool) -> str:
    """Check the dataset's files (no decoding) and labels; return the summary line.

    Missing images are an error naming their list lines, unless they are to be skipped.
    """
    if not callable(getattr(dataset, "check", None)):
        return f"{type(dataset).__name__}: {len(dataset)} samples (not checked)"
    summary = dataset.check(class_num)
    if summary.missing and not skip_bad_images:
        shown = "; ".join(summary.missing[:5]) + ("; ..." if len(summary.missing) > 5 else "")
        raise DataError(f"{len(summary.missing)} of {summary.images} images are missing: {shown}. "
                        "Fix the list, or set loader.skip_bad_images: true to skip them.")
    line = summary.describe()
    if summary.missing:
        line += " (missing images will be skipped: loader.skip_bad_images)"
    return line


# --- sampling -------------------------------------------------------------------------


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


# --- batches --------------------------------------------------------------------------


@attrs.frozen
class _Failure:
    """A sample that could not be made; ``skippable`` for unreadable images."""

    index: int
    message: str
    skippable: bool


@attrs.frozen
class _Batch:
    """What a worker hands back: arrays, the skipped indices, and a problem if there was one."""

    images: np.ndarray | None
    labels: np.ndarray | None
    skipped: tuple[int, ...] = ()
    note: str = ""  # the first skip reason, or the error when images is None
    failed: bool = False

    def encode(self) -> tuple[np.ndarray, ...]:
        """Plain arrays for paddle.io.DataLoader's workers (it rejects empty arrays and strings)."""
        dummy = np.zeros(1, np.float32)
        status = np.array([int(self.failed), len(self.skipped), *self.skipped], np.int64)
        note = np.frombuffer(self.note.encode("utf-8") or b"\0", np.uint8)
        return (self.images if self.images is not None else dummy,
                self.labels if self.labels is not None else dummy, status, note)

    @classmethod
    def decode(cls, arrays: Sequence[Any]) -> tuple[_Batch, Any, Any]:
        """The batch's status, and its images and labels (still paddle Tensors)."""
        images, labels, status, note = arrays
        status = status.numpy()
        text = bytes(note.numpy()).decode("utf-8").rstrip("\0")
        skipped = tuple(int(i) for i in status[2:2 + int(status[1])])
        real = not status[0] and images.ndim == 4
        return cls(None, None, skipped, text, bool(status[0])), images if real else None, labels if real else None


class Loader:
    """Iterable over ``(images, labels)`` batches of paddle Tensors; see the module docstring.

    ``len(loader)`` is the number of batches per epoch; ``summary`` is the
    checked dataset's one-line description; ``skipped`` counts the images
    skipped in the last epoch. Each iteration is one epoch: the one given to
    :meth:`set_epoch`, else the previous one plus one (starting at 0).
    """

    def __init__(self, dataset: Any, pipeline: Pipeline, sampler: EpochBatchSampler, batch_ops: Sequence[Callable],
                 settings: LoaderSettings, *, seed: int, mode: str, summary: str, image_shape: Sequence[int]) -> None:
        self.dataset, self.pipeline, self.sampler = dataset, pipeline, sampler
        self.batch_ops = list(batch_ops)
        self.settings, self.seed, self.mode, self.summary = settings, seed, mode, summary
        self.batch_size = sampler.batch_size
        self.use_shared_memory = settings.use_shared_memory and settings.num_workers > 0
        if self.use_shared_memory:
            batch_bytes = self.batch_size * int(np.prod(image_shape)) * 4
            self.use_shared_memory = shared_memory_fits(batch_bytes, settings.num_workers)
        self.skipped = 0
        self._next_epoch = 0

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its shuffle and augmentation draws)."""
        self._next_epoch = epoch

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        epoch = self._next_epoch
        self._next_epoch = epoch + 1
        self.sampler.set_epoch(epoch)
        batches = self._worker_batches(epoch) if self.settings.num_workers > 0 else self._local_batches(epoch)
        return self._deliver(batches)

    def _local_batches(self, epoch: int) -> Iterator[tuple[_Batch, Any, Any]]:
        """Batches made by one background thread (decoding overlaps the caller's work, as in
        paddle's own single-process loader), handed over as Tensors without a copy (DLPack;
        ``paddle.to_tensor`` copied at about 1 GB/s, more than the whole normalisation cost)."""
        import paddle

        made = (self.collate([self.fetch(i) for i in indices]) for indices in self.sampler)
        start = partial(reseed, self.seed, epoch, self.sampler.rank, 0)
        for batch in in_background(made, depth=PREFETCH_FACTOR, start=start):
            if batch.images is None:
                yield batch, None, None
            else:
                yield batch, paddle.from_dlpack(batch.images), paddle.from_dlpack(batch.labels)

    def _worker_batches(self, epoch: int) -> Iterator[tuple[_Batch, Any, Any]]:
        import paddle

        loader = paddle.io.DataLoader(
            _Fetching(self), batch_sampler=self.sampler, num_workers=self.settings.num_workers,
            use_shared_memory=self.use_shared_memory, collate_fn=self._collate_encoded,
            worker_init_fn=partial(_seed_worker, self.seed, epoch, self.sampler.rank),
        )
        for arrays in loader:
            yield _Batch.decode(arrays)

    def _deliver(self, batches: Iterator[tuple[_Batch, Any, Any]]) -> Iterator[tuple[Any, Any]]:
        skipped: list[int] = []
        reasons: list[str] = []
        self.skipped = 0
        for batch, images, labels in batches:
            if batch.failed:
                error = UnreadableImageError if batch.note.startswith(_UNREADABLE) else DataError
                raise error(batch.note.removeprefix(_UNREADABLE))
            skipped += batch.skipped
            if batch.note and len(reasons) < 3:
                reasons.append(batch.note)
            if images is not None:
                yield images, labels
        self.skipped = len(skipped)
        if skipped:
            warnings.warn(f"DataLoader.{self.mode}: skipped {len(skipped)} unreadable images this epoch "
                          f"(loader.skip_bad_images), e.g. {'; '.join(reasons)}", SkippedImagesWarning, stacklevel=2)

    def fetch(self, index: int) -> tuple[Any, Any] | _Failure:
        """``dataset[index]``, or a _Failure describing why it could not be made."""
        try:
            return self.dataset[index]
        except UnreadableImageError as exc:
            return _Failure(index, str(exc), True)
        except CorollaError as exc:
            return _Failure(index, str(exc), False)
        except Exception as exc:  # a dataset's own bug: keep its traceback in the message
            where = f"DataLoader.{self.mode}.dataset[{index}]"
            return _Failure(index, f"{where}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}", False)

    def collate(self, items: Sequence[Any]) -> _Batch:
        """Stack the good samples, finish them as a batch and apply the batch transforms."""
        failures = [item for item in items if isinstance(item, _Failure)]
        fatal = [f for f in failures if not (f.skippable and self.settings.skip_bad_images)]
        if fatal:
            prefix = _UNREADABLE if fatal[0].skippable else ""
            return _Batch(None, None, note=prefix + fatal[0].message, failed=True)
        good = [item for item in items if not isinstance(item, _Failure)]
        skipped = tuple(f.index for f in failures)
        note = failures[0].message if failures else ""
        if not good:
            return _Batch(None, None, skipped, note)
        try:
            images = self.pipeline.finish([sample for sample, _ in good])
            labels = _stack_labels([label for _, label in good])
            for op in self.batch_ops:
                images, labels = op(images, labels)
        except CorollaError as exc:
            return _Batch(None, None, note=str(exc), failed=True)
        return _Batch(images, labels, skipped, note)

    def _collate_encoded(self, items: Sequence[Any]) -> tuple[np.ndarray, ...]:
        return self.collate(items).encode()


#: marks an unreadable-image error on its way back from a worker
_UNREADABLE = "\x01"


class _Fetching:
    """The dataset as paddle.io.DataLoader sees it: failures become values, not exceptions."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.loader.fetch(index)


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


def _stack_labels(labels: Sequence[Any]) -> np.ndarray:
    first = np.asarray(labels[0])
    if first.ndim == 0:
        return np.asarray(labels, dtype=np.int64)
    return np.stack(labels).astype(np.float32)


def _seed_worker(seed: int, epoch: int, rank: int, worker_id: int) -> None:
    reseed(seed, epoch, rank, worker_id + 1)


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
