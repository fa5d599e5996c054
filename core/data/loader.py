"""``build_dataloader``: a ``DataLoader.<Mode>`` section -> batches of ``(images, labels)`` paddle Tensors.

The section has PaddleClas's layout::

    DataLoader:
      Train:
        dataset: {name: ImageNetDataset, image_root: ..., cls_label_path: ...,
                  transform_ops: [...], batch_transform_ops: [...]}
        sampler: {name: DistributedBatchSampler, batch_size: 64, drop_last: False, shuffle: True}
        loader: {num_workers: 4, use_shared_memory: True}

The sampler is a component (the ``sampler`` kind; :class:`corolla.api.Sampler`); one
that varies the image size per batch (``MultiScaleSampler``) gets a pipeline variant
per size (:func:`corolla.data.pipeline.size_variants`).

Images come as float32 NCHW; labels as int64 ``[N]`` (-1 for unlabeled
samples) or float32 ``[N, C]`` (multi-label, or soft labels after Mixup and
Cutmix), on the job's device. Samples stay uint8 HWC until the batch is
complete; then normalisation and the other batch-capable transforms run once,
vectorised (:mod:`corolla.data.pipeline`), or on the GPU after a uint8 copy
(``loader.device_transforms``, :mod:`corolla.data.device`).

Shuffling is seeded by ``(seed, epoch)`` and augmentation by ``(seed, epoch,
rank, worker)``, so an epoch is the same whether training ran straight or
resumed (call ``set_epoch`` as the run's epoch counter says). Bad data is
never replaced by another sample: a missing or undecodable image is an error
naming its list line, unless ``loader.skip_bad_images`` is true, which skips
such images and warns with their count at the end of each epoch.

With ``num_workers: 0`` batches are made in a thread of the calling process
(Paddle 3.3's single-process DataLoader hangs when a dataset raises); on GPU
each is then copied to the device before the step that uses it (a wait).
With workers, ``paddle.io.DataLoader`` runs the same code in worker processes
and, on GPU, copies batches to the device on a side stream while the previous
step runs. ``num_workers: auto`` picks a count for the device
(:func:`corolla.data.device.worker_count`).
"""
from __future__ import annotations

import traceback
import warnings
from contextlib import closing
from functools import partial
from typing import Any, Callable, Generator, Iterator, Sequence

import numpy as np

from corolla.config.plan import LoaderPlan
from corolla.config.sections import LoaderSettings
from corolla.data.background import PREFETCH_FACTOR, in_background, shared_memory_fits
from corolla.data.batches import UNREADABLE, Batch, Failure, as_tensor
from corolla.data.checks import describe_check
from corolla.data.device import device_pipeline, worker_count
from corolla.data.pipeline import Pipeline, UnreadableImageError, build_pipeline, size_variants
from corolla.data.placement import launched_rank, launched_world_size
from corolla.data.randomness import reseed
from corolla.plugin.errors import CorollaError, DataError
from corolla.plugin.hookspecs import Sampler
from corolla.plugin.registry import Registry

class SkippedImagesWarning(UserWarning):
    """Images that could not be read were skipped (``loader.skip_bad_images``)."""


# --- building -------------------------------------------------------------------------


def build_dataset(plan: LoaderPlan, registry: Registry, *, device: str = "cpu") -> tuple[Any, Pipeline]:
    """The dataset of a planned ``DataLoader.<mode>`` (its transforms built) and its pipeline
    (a :class:`corolla.data.device.DevicePipeline` when its tail runs on ``device``)."""
    pipeline = build_pipeline(plan.transforms, registry, f"{plan.key_path}.dataset.transform_ops")
    pipeline = device_pipeline(pipeline, plan, device)
    return plan.dataset.build(registry, transform_ops=pipeline), pipeline


def build_dataloader(plan: LoaderPlan, registry: Registry, *, class_num: int | None, seed: int,
                     rank: int | None = None, world_size: int | None = None,
                     image_shape: Sequence[int] = (3, 224, 224), device: str = "cpu", labels_needed: bool = False) -> Loader:
    """Build the loader of a planned ``DataLoader.<mode>`` section.

    ``class_num`` is the run's class count (labels are checked against it; Mixup
    mixes that many). ``rank`` and ``world_size`` default to the launcher's; the
    sampler decides how the data is split between ranks (``BatchSampler`` does not).
    ``device`` (``cpu`` or ``gpu``, as :func:`corolla.data.placement.setup_environment`
    selected it) is where the batches are delivered. ``labels_needed``: every loss learns
    from labeled images only (unlabeled ones are warned about; a set of them only is an error).
    """
    dataset, pipeline = build_dataset(plan, registry, device=device)
    batch_ops = [part.build(registry) for part in plan.batch_transforms]
    summary = describe_check(dataset, class_num, skip_bad_images=plan.loader.skip_bad_images, mode=plan.mode,
                             labels_needed=labels_needed)
    if rank is None or world_size is None:
        rank, world_size = launched_rank(), launched_world_size()
    sampler = plan.sampler.build(registry, dataset=dataset, seed=seed, rank=rank, world_size=world_size)
    if getattr(sampler, "image_sizes", None):  # multi-scale: each batch's size from its own ops
        pipeline.add_sizes(size_variants(plan.transforms, sampler.image_sizes, registry, f"{plan.key_path}.dataset.transform_ops"))
    return Loader(dataset, pipeline, sampler, batch_ops, plan.loader, seed=seed, mode=plan.mode,
                  summary=summary, image_shape=image_shape, device=device, world_size=world_size)


class Loader:
    """Iterable over ``(images, labels)`` batches of paddle Tensors; see the module docstring.

    ``len(loader)`` is the number of batches per epoch; ``summary`` is the
    checked dataset's one-line description; ``skipped`` counts the images
    skipped in the last epoch. Each iteration is one epoch: the one given to
    :meth:`set_epoch`, else the previous one plus one (starting at 0).
    """

    def __init__(self, dataset: Any, pipeline: Pipeline, sampler: Sampler, batch_ops: Sequence[Callable],
                 settings: LoaderSettings, *, seed: int, mode: str, summary: str, image_shape: Sequence[int],
                 device: str = "cpu", world_size: int = 1) -> None:
        self.dataset, self.pipeline, self.sampler = dataset, pipeline, sampler
        self.batch_ops = list(batch_ops)
        self.settings, self.seed, self.mode, self.summary = settings, seed, mode, summary
        self.device = device
        self.num_workers = worker_count(settings.num_workers, device, world_size)
        self.batch_size = sampler.batch_size
        self.use_shared_memory = settings.use_shared_memory and self.num_workers > 0
        if self.use_shared_memory:
            batch_bytes = self.batch_size * int(np.prod(image_shape)) * (1 if self.on_device else 4)
            self.use_shared_memory = shared_memory_fits(batch_bytes, self.num_workers)
        self.skipped = 0
        self._next_epoch = 0

    def __len__(self) -> int:
        return len(self.sampler)

    @property
    def on_device(self) -> bool:
        """Whether batches leave the host as uint8 and are finished on the device."""
        return getattr(self.pipeline, "device_start", None) is not None

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its shuffle and augmentation draws)."""
        self._next_epoch = epoch

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        epoch = self._next_epoch
        self._next_epoch = epoch + 1
        self.sampler.set_epoch(epoch)
        batches = self._worker_batches(epoch) if self.num_workers > 0 else self._local_batches(epoch)
        return self._deliver(batches)

    def _local_batches(self, epoch: int) -> Generator[tuple[Batch, Any, Any, Any], None, None]:
        """Batches made by one background thread (decoding overlaps the caller's work, as in
        paddle's own single-process loader), copied into Tensors here (``as_tensor`` says why
        they do not share the arrays' memory)."""
        made = (self.collate([self.fetch(i) for i in indices]) for indices in self.sampler)
        start = partial(reseed, self.seed, epoch, self.sampler.rank, 0)
        for batch in in_background(made, depth=PREFETCH_FACTOR, start=start):
            if batch.images is None:
                yield batch, None, None, None
            else:
                draws = as_tensor(batch.draws) if batch.draws is not None and batch.draws.size else None
                yield batch, as_tensor(batch.images), as_tensor(batch.labels), draws

    def _worker_batches(self, epoch: int) -> Generator[tuple[Batch, Any, Any, Any], None, None]:
        import paddle

        loader = paddle.io.DataLoader(
            _Fetching(self), batch_sampler=self.sampler, num_workers=self.num_workers,
            use_shared_memory=self.use_shared_memory, collate_fn=self._collate_encoded,
            worker_init_fn=partial(_seed_worker, self.seed, epoch, self.sampler.rank),
        )
        batches = iter(loader)
        try:
            for fields in batches:
                yield Batch.decode(fields)
        finally:
            # a consumer that stops early (a data error, a stopped run) would leave the workers
            # running: paddle's iterator is kept alive by its own reader thread (2.6 and 3.x
            # shut it down with this private method; a Paddle without it keeps the old leak)
            shutdown = getattr(batches, "_try_shutdown_all", None)
            if shutdown is not None:
                shutdown()

    def _deliver(self, batches: Generator[tuple[Batch, Any, Any, Any], None, None]) -> Iterator[tuple[Any, Any]]:
        skipped: list[int] = []
        reasons: list[str] = []
        self.skipped = 0
        try:
            with closing(batches):
                for batch, images, labels, draws in batches:
                    if batch.failed:
                        if batch.note.startswith(UNREADABLE):
                            raise UnreadableImageError(f"{batch.note.removeprefix(UNREADABLE)} (to skip unreadable images, "
                                                       f"set DataLoader.{self.mode}.loader.skip_bad_images: true)")
                        raise DataError(batch.note)
                    skipped += batch.skipped
                    if batch.note and len(reasons) < 3:
                        reasons.append(batch.note)
                    if images is not None:
                        images, labels = self._placed(images), self._placed(labels)
                        if self.on_device:
                            images = self.pipeline.tail(images, self._placed(draws) if self.pipeline.tail.drawing else None)
                        yield images, labels
        finally:  # also when the consumer stops early (training leaves the batches past its last update)
            self._report_skipped(skipped, reasons)

    def _report_skipped(self, skipped: list[int], reasons: list[str]) -> None:
        self.skipped = len(skipped)
        if skipped:
            images = "image" if len(skipped) == 1 else "images"
            warnings.warn(f"DataLoader.{self.mode}: skipped {len(skipped)} unreadable {images} this epoch "
                          f"(loader.skip_bad_images), e.g. {'; '.join(reasons)}", SkippedImagesWarning, stacklevel=3)

    def fetch(self, item: int | tuple[int, int, int]) -> tuple[Any, Any] | Failure:
        """``dataset[index]``, or a Failure describing why it could not be made; ``item`` is the
        index, or ``(index, width, height)`` from a sampler that varies the image size."""
        index = item
        if isinstance(item, tuple):
            index, width, height = item
            self.pipeline.select_size((width, height))
        try:
            return self.dataset[index]
        except UnreadableImageError as exc:
            return Failure(index, str(exc), True)
        except CorollaError as exc:
            return Failure(index, str(exc), False)
        except Exception as exc:  # a dataset's own bug: keep its traceback in the message
            where = f"DataLoader.{self.mode}.dataset[{index}]"
            return Failure(index, f"{where}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}", False)

    def collate(self, items: Sequence[Any]) -> Batch:
        """Stack the good samples, finish them as a batch and apply the batch transforms."""
        failures = [item for item in items if isinstance(item, Failure)]
        fatal = [f for f in failures if not (f.skippable and self.settings.skip_bad_images)]
        if fatal:
            prefix = UNREADABLE if fatal[0].skippable else ""
            return Batch(None, None, note=prefix + fatal[0].message, failed=True)
        good = [item for item in items if not isinstance(item, Failure)]
        skipped = tuple(f.index for f in failures)
        note = failures[0].message if failures else ""
        if not good:
            return Batch(None, None, skipped, note)
        draws = None
        try:
            if self.on_device:
                images, draws = self.pipeline.finish_for_device([sample for sample, _ in good])
            else:
                images = self.pipeline.finish([sample for sample, _ in good])
            labels = _stack_labels([label for _, label in good])
            for op in self.batch_ops:
                images, labels = op(images, labels)
        except CorollaError as exc:
            return Batch(None, None, note=str(exc), failed=True)
        return Batch(images, labels, skipped, note, draws=draws)

    def _collate_encoded(self, items: Sequence[Any]) -> tuple[Any, ...]:
        return self.collate(items).encode()

    def _placed(self, tensor: Any) -> Any:
        """``tensor`` on the GPU of a GPU job (workers' batches are there already; the thread's are
        copied here, which waits for the copy)."""
        if self.device == "gpu" and not tensor.place.is_gpu_place():
            return tensor.cuda()
        return tensor


class _Fetching:
    """The dataset as paddle.io.DataLoader sees it: failures become values, not exceptions."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.loader.fetch(index)


def _stack_labels(labels: Sequence[Any]) -> np.ndarray:
    first = np.asarray(labels[0])
    if first.ndim == 0:
        return np.asarray(labels, dtype=np.int64)
    return np.stack(labels).astype(np.float32)


def _seed_worker(seed: int, epoch: int, rank: int, worker_id: int) -> None:
    reseed(seed, epoch, rank, worker_id + 1)
