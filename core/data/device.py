"""Transforms that run on the device: uint8 batches go to the GPU, the trailing ops run there.

A loader's batch is normally finished on the host (:meth:`Pipeline.finish`: NormalizeImage
writes a float32 batch four times the size of the uint8 images). With
``loader.device_transforms`` on, the trailing ops that offer a device version run on the
batch as a paddle Tensor instead, after the (four times smaller) uint8 batch has been
copied; ``paddle.io.DataLoader`` workers copy it to the GPU on a side stream, overlapped
with the training step. Ops opt in with two attributes:

- ``apply_device(batch, draws) -> batch``: the op on an N-first float32 Tensor of the
  same layout as its per-image input (raw 0-255 values until NormalizeImage), the same
  result as image by image; ``draws`` is this op's column of per-image draws, or None;
- ``draw() -> int``: the op's random choice for one image, drawn from the augmentation
  generator exactly as its per-image call draws it (``RandFlipImage``). The host draws it
  when it makes the image, in the same order as without device transforms, so that a
  seed gives the same augmentations either way.

The device tail is the longest run of such ops at the end of ``transform_ops``; it must
take in every batch op (those after it run on the host) and there must be no
``batch_transform_ops`` (Mixup, Cutmix) and no multi-scale sampler: otherwise the batch
is finished on the host, silently under ``auto`` and with a warning under ``true``.
"""
from __future__ import annotations

import os
import threading
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from corolla.config.plan import LoaderPlan
from corolla.data.pipeline import Pipeline
from corolla.plugin.errors import DataError

#: most worker processes ``num_workers: auto`` starts for one GPU process
MAX_AUTO_WORKERS = 16


def worker_count(setting: int | str, device: str, processes_per_machine: int = 1) -> int:
    """``loader.num_workers``: as given, or for ``auto`` 0 on CPU (training uses the cores; on two
    cores workers did not pay) and on GPU the cores of this process less two (the training loop
    and the host-to-device copies), at most :data:`MAX_AUTO_WORKERS`."""
    if setting != "auto":
        return int(setting)
    if device != "gpu":
        return 0
    cores = len(os.sched_getaffinity(0)) // max(1, processes_per_machine)
    return max(0, min(cores - 2, MAX_AUTO_WORKERS))


def tail_start(pipeline: Pipeline) -> int | None:
    """Where the ops that can all run on the device begin (None: the last op cannot)."""
    start = len(pipeline.ops)
    while start > 1 and callable(getattr(pipeline.ops[start - 1], "apply_device", None)):
        start -= 1
    return start if start < len(pipeline.ops) else None


def device_pipeline(pipeline: Pipeline, plan: LoaderPlan, device: str) -> Pipeline:
    """``pipeline``, or a :class:`DevicePipeline` over the same ops when ``loader.device_transforms``
    (``auto``: on GPU) asks for it and the ops allow it."""
    setting = plan.loader.device_transforms
    if setting is False or (setting == "auto" and device != "gpu"):
        return pipeline
    start = tail_start(pipeline)
    reason = None
    if start is None:
        reason = f"its last transform ({pipeline.specs[-1].name}) has no device version"
    elif start > pipeline.split:
        reason = f"{pipeline.specs[start - 1].name} runs on whole batches but has no device version"
    elif plan.batch_transforms:
        reason = "batch_transform_ops run on the finished batch on the host"
    if reason is None:
        return DevicePipeline(pipeline, start, explain=setting is True)
    if setting is True:
        warnings.warn(f"{plan.key_path}.loader.device_transforms: {reason}; batches are finished on the host",
                      UserWarning, stacklevel=3)
    return pipeline


class DeviceTail:
    """The ops ``ops`` (each with ``apply_device``) on a batch Tensor, then NCHW float as
    :meth:`Pipeline.finish` makes it (``output_layout``: the pipeline's final layout)."""

    def __init__(self, ops: Sequence[Any], output_layout: str) -> None:
        self.ops = list(ops)
        self.output_layout = output_layout
        self.drawing = [i for i, op in enumerate(self.ops) if callable(getattr(op, "draw", None))]

    def __call__(self, images: Any, draws: Any) -> Any:
        """``images``: the stacked per-image results (uint8); ``draws``: ``[N, len(drawing)]`` int64
        (None when no op draws)."""
        import paddle

        batch = images if paddle.is_floating_point(images) else images.astype("float32")
        column = {index: j for j, index in enumerate(self.drawing)}
        for index, op in enumerate(self.ops):
            batch = op.apply_device(batch, draws[:, column[index]] if index in column else None)
        if self.output_layout == "hwc":
            batch = batch.transpose([0, 3, 1, 2])
        return batch if paddle.is_floating_point(batch) else batch.astype("float32")


class DevicePipeline(Pipeline):
    """``pipeline``'s ops with ``ops[start:]`` left to the device: :meth:`sample` stops before
    them (recording their draws), :meth:`finish_for_device` stacks the uint8 batch, and
    ``tail`` (a :class:`DeviceTail`) finishes it where the batch is."""

    def __init__(self, pipeline: Pipeline, start: int, *, explain: bool = False) -> None:
        super().__init__(pipeline.ops, pipeline.specs, pipeline.key_path)
        self.device_start: int | None = start
        self.host_split, self.split = self.split, start
        self.tail = DeviceTail(self.ops[start:], self.output_layout)
        self._drawing = [self.ops[start + i] for i in self.tail.drawing]
        self._explain = explain
        self._local = threading.local()  # per thread: id(sample) -> its draws

    def add_sizes(self, variants: Mapping[tuple[int, int], Pipeline]) -> None:
        """Multi-scale batches are finished on the host: device transforms end here."""
        if self._explain:
            warnings.warn(f"{self.key_path}: device_transforms do not run with a multi-scale sampler; batches "
                          "are finished on the host", UserWarning, stacklevel=2)
        self.device_start, self.split = None, self.host_split
        super().add_sizes(variants)

    def labeled_sample(self, data: Any) -> tuple[np.ndarray, dict[str, Any]]:
        image, labels = super().labeled_sample(data)
        if self.device_start is not None:
            self._draws()[id(image)] = [int(op.draw()) for op in self._drawing]
        return image, labels

    def finish_for_device(self, samples: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The stacked per-image results (uint8 NHWC, as the tail starts) and their draws ``[N, R]``."""
        table = self._draws()
        try:
            draws = [table.pop(id(sample)) for sample in samples]
        except KeyError:
            raise DataError(f"{self.key_path}: the dataset returned an image that transform_ops.sample did not make "
                            "(device_transforms need it unchanged); set loader.device_transforms: false") from None
        finally:
            table.clear()  # draws of samples that failed after their transforms
        if len({np.shape(s) for s in samples}) > 1:
            raise DataError(f"{self.key_path}: images of one batch differ in shape; end the transforms with a "
                            "fixed-size op (RandCropImage, CropImage or ResizeImage with size)")
        return np.stack(samples), np.array(draws, dtype=np.int64).reshape(len(samples), len(self._drawing))

    def finish(self, samples: Sequence[np.ndarray]) -> np.ndarray:
        """The batch as :meth:`Pipeline.finish` makes it, the tail run on the current device."""
        if self.device_start is None:
            return super().finish(samples)
        import paddle

        images, draws = self.finish_for_device(samples)
        return self.tail(paddle.to_tensor(images), paddle.to_tensor(draws) if draws.size else None).numpy()

    def _draws(self) -> dict[int, list[int]]:
        table = getattr(self._local, "draws", None)
        if table is None:
            table = self._local.draws = {}
        return table
