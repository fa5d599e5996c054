"""Conformance checks of the data kinds: transform, batch transform and dataset."""
from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

import numpy as np

from corolla.config.planner import plan_items, read_plan
from corolla.data.loader import build_dataloader
from corolla.data.pipeline import LabeledImage, build_batch_transform, build_pipeline
from corolla.plugin.errors import CorollaError
from corolla.plugin.registry import Registry
from corolla.testing.conformance_rules import ConformanceError, component, default_registry, deterministic, must, same
from corolla.testing.images import class_looks, image_rng, render_image

#: the ``transform_ops`` that :func:`check_dataset` gives a dataset by default
DATASET_OPS: list[dict] = [{"DecodeImage": {"to_rgb": True}}, {"ResizeImage": {"size": 32}},
                           {"NormalizeImage": {"order": ""}}]


def sample_image(size: tuple[int, int] = (48, 40), seed: int = 0) -> np.ndarray:
    """A uint8 HWC test picture (``size`` is width, height), as DecodeImage makes them."""
    return np.asarray(render_image(class_looks(1)[0], size, image_rng(seed, 9)))


def jpeg_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    stream = io.BytesIO()
    Image.fromarray(image).save(stream, format="JPEG", quality=90)
    return stream.getvalue()


def check_transform(name: str, params: Mapping[str, Any] | None = None, *, registry: Registry | None = None,
                    after_normalize: bool = False, size: tuple[int, int] = (48, 40)) -> None:
    """A per-sample transform: given what its place in ``transform_ops`` holds (encoded bytes
    for a decoder; a uint8 image before ``NormalizeImage``; float32 after it, with
    ``after_normalize``; HWC, or CHW when the op says ``layout = "chw"``) it returns a 3-D
    array: uint8 stays uint8 (or becomes float, a normaliser), float stays float, in its
    ``output_layout``. Its randomness comes from ``corolla.api.generator`` (the same seed,
    the same result); ``apply_batch``, if any, gives a batch of the same shape and, for a
    deterministic op, the same values; and it runs in a pipeline from a JPEG to the
    float32 CHW array the model gets."""
    op, where = component(registry, "transform", name, params)
    must(callable(op), where, f"the factory returned {type(op).__name__}, which is not callable as op(sample)")
    decodes = bool(getattr(op, "decodes", False))
    layout = getattr(op, "layout", None) or "hwc"
    floating = after_normalize and not decodes
    image = sample_image(size)
    if floating:
        image = (image.astype(np.float32) - 127.5) / 64.0
    if layout == "chw":
        image = np.ascontiguousarray(image.transpose(2, 0, 1))
    make = (lambda: jpeg_bytes(sample_image(size))) if decodes else image.copy
    out = _output(op(make()), op, where)
    _check_sample(out, where, floating=floating, layout=getattr(op, "output_layout", layout), decoded=decodes)
    fixed = deterministic(lambda: _output(op(make()), op, where), where)
    if callable(getattr(op, "apply_batch", None)) and not decodes:
        _check_apply_batch(op, where, [image, image[::-1].copy() if layout == "hwc" else image[:, ::-1].copy()], fixed)
    _check_in_pipeline(name, params, registry or default_registry(), where, op, after_normalize=after_normalize)


def _output(made: Any, op: Any, where: str) -> Any:
    """The image an op returned; a :class:`LabeledImage`'s keys must be declared in ``makes_labels``."""
    if isinstance(made, LabeledImage):
        declared = set(getattr(op, "makes_labels", ()))
        must(set(made.labels) <= declared, where,
             f"returned labels {sorted(made.labels)} but declares makes_labels = {sorted(declared)}")
        return made.image
    return made


def _check_sample(out: Any, where: str, *, floating: bool, layout: str, decoded: bool = False) -> None:
    must(isinstance(out, np.ndarray), where, f"returned {type(out).__name__}; a transform returns a NumPy array")
    must(out.ndim == 3, where, f"returned an array of shape {out.shape}; expected one image with 3 dimensions")
    channels = out.shape[0] if layout == "chw" else out.shape[-1]
    must(channels in (1, 3, 4), where, f"returned shape {out.shape}, which is not {layout.upper()} with 1, 3 or 4 "
                                       "channels (an op that changes the layout says so with output_layout)")
    if decoded:
        must(out.dtype == np.uint8, where, f"decoded to {out.dtype}; a decoder makes uint8 images")
    elif floating:
        must(out.dtype.kind == "f", where, f"turned a float32 image into {out.dtype}; after NormalizeImage "
                                           "every op keeps the image a float array")
    else:
        must(out.dtype == np.uint8 or out.dtype.kind == "f", where,
             f"turned a uint8 image into {out.dtype}; before NormalizeImage images are uint8 (a normaliser makes float32)")


def _check_apply_batch(op: Any, where: str, images: Sequence[np.ndarray], fixed: bool) -> None:
    batch = np.stack(images)
    made = op.apply_batch(batch.copy())
    must(isinstance(made, np.ndarray) and made.ndim == 4 and len(made) == len(images), where,
         f"apply_batch returned {getattr(made, 'shape', type(made).__name__)} for a batch of shape {batch.shape}; "
         "expected the same number of images, N first")
    if fixed:
        one_by_one = np.stack([_output(op(image.copy()), op, where) for image in images])
        must(made.shape == one_by_one.shape and np.allclose(made, one_by_one, atol=1e-5), where,
             "apply_batch gives other values than the op image by image; the loader runs it on whole batches")
    if getattr(op, "takes_samples", False):
        listed = op.apply_batch([image.copy() for image in images])
        must(not fixed or same(listed, made), where, "apply_batch gives other values for a list of images "
                                                     "than for their stack (takes_samples)")


def _check_in_pipeline(name: str, params: Mapping[str, Any] | None, registry: Registry, where: str, op: Any,
                       *, after_normalize: bool) -> None:
    item = {name: dict(params or {})}
    layout = getattr(op, "layout", None)
    to_chw = [{"ToCHWImage": None}] if layout == "chw" else []
    if getattr(op, "decodes", False):
        order = "chw" if getattr(op, "output_layout", "hwc") == "chw" else ""
        items = [item, {"NormalizeImage": {"order": order}}]
    elif after_normalize:
        items = [{"DecodeImage": None}, {"ResizeImage": {"size": [48, 40]}}, {"NormalizeImage": {"order": ""}}, *to_chw, item]
    else:
        order = "chw" if (getattr(op, "output_layout", None) or layout) == "chw" else ""
        items = [{"DecodeImage": None}, {"ResizeImage": {"size": [48, 40]}}, *to_chw, item, {"NormalizeImage": {"order": order}}]
    pipeline = build_pipeline(plan_items(registry, "transform", items, "transform_ops"), registry, "transform_ops")
    try:
        array = pipeline(jpeg_bytes(sample_image()))
    except CorollaError as exc:
        raise ConformanceError(f"{where}: fails in a pipeline {[next(iter(i)) for i in items]}: {exc}") from exc
    must(array.ndim == 3 and array.dtype in (np.float32, np.float16), where,
         f"a pipeline {[next(iter(i)) for i in items]} made {array.dtype} {array.shape}; expected a float CHW image")


def check_batch_transform(name: str, params: Mapping[str, Any] | None = None, *, registry: Registry | None = None,
                          class_num: int = 4, batch_size: int = 4, size: int = 16) -> None:
    """A batch transform: ``op(images, labels)`` on a float32 NCHW batch and int64 ``[N]``
    labels returns images of the same batch size and channels, and labels int64 ``[N]`` or
    float ``[N, class_num]``; its randomness comes from ``corolla.api.generator``; a batch
    with an unlabeled sample (-1) keeps it unlabeled or is refused with a corolla error."""
    registry = registry or default_registry()
    where = registry.resolve("batch_transform", name).describe()
    op = build_batch_transform(registry, name, dict(params or {}), f"<conformance batch_transform {name}>",
                               class_num=class_num)
    must(callable(op), where, f"the factory returned {type(op).__name__}, which is not callable as op(images, labels)")
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch_size, 3, size, size)).astype(np.float32)
    labels = (np.arange(batch_size) % class_num).astype(np.int64)
    made = op(images.copy(), labels.copy())
    must(isinstance(made, tuple) and len(made) == 2, where, "returned something other than (images, labels)")
    out, targets = made
    must(isinstance(out, np.ndarray) and out.ndim == 4 and out.shape[:2] == images.shape[:2] and out.dtype.kind == "f",
         where, f"returned images {getattr(out, 'dtype', '?')} {getattr(out, 'shape', '?')} for float32 {images.shape}; "
                "expected a float NCHW batch of the same size and channels")
    targets = np.asarray(targets)
    hard = targets.dtype == np.int64 and targets.shape == (batch_size,)
    soft = targets.dtype.kind == "f" and targets.shape == (batch_size, class_num)
    must(hard or soft, where, f"returned labels {targets.dtype} {targets.shape}; expected int64 [{batch_size}] or "
                              f"float [{batch_size}, {class_num}] (soft labels)")
    deterministic(lambda: op(images.copy(), labels.copy()), where)
    unlabeled = labels.copy()
    unlabeled[-1] = -1
    try:
        _, kept = op(images.copy(), unlabeled)
    except CorollaError:
        return  # refused, with a message for the user: allowed
    except Exception as exc:
        raise ConformanceError(f"{where}: a batch with an unlabeled sample (-1) raised {type(exc).__name__}: {exc}; "
                               "keep it unlabeled or raise corolla.api.DataError saying why") from exc
    kept = np.asarray(kept)
    must(kept[-1].min() < 0, where, "turned an unlabeled sample (-1) into a labeled one")


def check_dataset(name: str, params: Mapping[str, Any] | None = None, *, registry: Registry | None = None,
                  class_num: int | None = None, transform_ops: Sequence[Mapping[str, Any]] | None = None,
                  batch_size: int = 4) -> None:
    """A dataset: built from ``params`` and ``transform_ops`` (default :data:`DATASET_OPS`) as
    ``DataLoader.Train.dataset``, it has samples, ``dataset[i]`` is ``(sample, label)``, and the
    real loader makes a float32 ``[N, C, H, W]`` batch of it with int64 ``[N]`` labels (below
    ``class_num``, or -1) or float ``[N, ...]`` ones; its optional ``check`` gives a summary."""
    registry = registry or default_registry()
    where = registry.resolve("dataset", name).describe()
    section = {
        "dataset": {"name": name, **dict(params or {}), "transform_ops": list(transform_ops or DATASET_OPS)},
        "sampler": {"name": "BatchSampler", "batch_size": batch_size, "shuffle": False, "drop_last": False},
        "loader": {"num_workers": 0},
    }
    plan = read_plan({"DataLoader": {"Train": section}}, registry).loaders["Train"]
    loader = build_dataloader(plan, registry, class_num=class_num, seed=0, rank=0, world_size=1)
    dataset = loader.dataset
    must(len(dataset) > 0, where, "has no samples")
    item = dataset[0]
    must(isinstance(item, tuple) and len(item) == 2, where, f"dataset[0] is {type(item).__name__}; expected (sample, label)")
    batches = iter(loader)
    images, labels = next(batches)
    batches.close()
    count = min(batch_size, len(dataset))
    must(str(images.dtype).endswith("float32") and len(images.shape) == 4 and images.shape[0] == count, where,
         f"the loader made images {images.dtype} {list(images.shape)}; expected float32 [{count}, C, H, W]")
    labels = labels.numpy()
    if labels.dtype == np.int64:
        must(labels.shape == (count,), where, f"labels of shape {labels.shape}; expected [{count}]")
        top = class_num if class_num is not None else np.inf
        must(((labels >= -1) & (labels < top)).all(), where, f"labels {labels.tolist()} are not 0..{top}-1 or -1")
    else:
        must(labels.dtype.kind == "f" and labels.shape[0] == count, where,
             f"labels {labels.dtype} {labels.shape}; expected int64 [{count}] or float [{count}, ...]")
    if callable(getattr(dataset, "check", None)):
        summary = dataset.check(class_num)
        must(isinstance(summary.describe(), str) and isinstance(summary.images, int), where,
             "check() returned a summary without images (int) and describe() (str)")
