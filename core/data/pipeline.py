"""The one preprocessing implementation: a ``transform_ops`` list turned into a pipeline.

Train and eval datasets, infer, export and predict all build their
preprocessing with :func:`build_pipeline`, so the same ops with the same
parameters give the same array everywhere. A pipeline maps an image path or
encoded bytes to a float32 CHW array::

    pipeline = build_pipeline(config["Infer"]["transforms"], registry, "Infer.transforms")
    chw = pipeline("flower.jpg")

The loader splits the same work in two to go faster without changing the
result: :meth:`Pipeline.sample` runs the per-image ops (samples stay uint8
HWC), and :meth:`Pipeline.finish` stacks a batch and runs the trailing ops
that can work on whole batches (NormalizeImage, ToCHWImage, RandomErasing,
...) once, vectorised. ``pipeline(x)`` is exactly ``finish([sample(x)])[0]``.

Ops are callables ``op(sample) -> sample`` (see :mod:`corolla.plugin.hookspecs`).
Optional attributes let an op take part in the fast paths:

- ``decodes = True``: the op turns encoded bytes into an image; it must be
  first. With ``can_defer`` true it offers ``open(bytes) -> PIL.Image``
  (header only) and ``finish(PIL.Image) -> ndarray``.
- ``takes_undecoded`` and ``on_decode(image) -> PIL.Image``: the op right
  after the decoder works on the opened image, e.g. to decode a JPEG at a
  reduced scale when it only needs a much smaller picture.
- ``apply_batch(batch) -> batch``: the op runs on a batch (N first) with the
  same result as image by image.
- ``takes_samples = True``: ``apply_batch`` also accepts the list of
  per-image results (all of one shape) and stacks them itself, which saves
  a copy when it is the first batch op.
- ``layout = "hwc"`` or ``"chw"``: the input layout the op needs;
  ``output_layout``: the layout it produces (otherwise unchanged).

An op that also makes labels (``BlurImage``: blurred or not) declares their keys in
``makes_labels`` and returns a :class:`LabeledImage`; :meth:`Pipeline.labeled_sample`
returns them beside the image, for a dataset that reads its labels from them
(``CustomLabelDataset``).
"""
from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Sequence

import attrs
import numpy as np

from corolla.plugin.errors import ConfigError, CorollaError, DataError
from corolla.plugin.registry import Registry

if TYPE_CHECKING:
    from corolla.config.plan import Part


class UnreadableImageError(DataError):
    """An image file is missing, unreadable or cannot be decoded."""


def read_image_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of an image file; a missing or unreadable file is an :class:`UnreadableImageError`."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UnreadableImageError(f"image not found: {path}") from None
    except OSError as exc:
        raise UnreadableImageError(f"cannot read image {path}: {exc.strerror or exc}") from None


class LabeledImage(NamedTuple):
    """What an op that makes labels returns: the image, and ``{label key: value}``."""

    image: Any
    labels: Mapping[str, Any]


class Pipeline:
    """Built ops of one ``transform_ops`` list; see the module docstring."""

    def __init__(self, ops: Sequence[Callable[[Any], Any]], specs: Sequence[Part], key_path: str) -> None:
        self.ops = list(ops)
        self.specs = list(specs)
        self.key_path = key_path
        self.output_layout = self._check_layouts()
        self._fused = (
            len(self.ops) >= 2
            and getattr(self.ops[0], "can_defer", False)
            and getattr(self.ops[1], "takes_undecoded", False)
        )
        split = len(self.ops)
        while split > 1 and callable(getattr(self.ops[split - 1], "apply_batch", None)):
            split -= 1
        self.split = split  # ops[:split] run per image, ops[split:] per batch
        self._sizes: dict[tuple[int, int], Pipeline] = {}
        self._selected: Pipeline | None = None

    def add_sizes(self, variants: Mapping[tuple[int, int], Pipeline]) -> None:
        """Give the pipeline variants that make images of other ``(width, height)`` sizes
        (multi-scale training, :func:`size_variants`), for :meth:`select_size`."""
        self._sizes.update(variants)

    def select_size(self, size: tuple[int, int] | None) -> None:
        """Make :meth:`sample` and :meth:`finish` run the variant of ``size`` until the next
        call (None: this pipeline's own ops). The loader selects each batch's size before
        making it; a process makes one batch at a time."""
        if size is not None and size not in self._sizes:
            raise DataError(f"{self.key_path}: no variant for the image size {size} (known: {sorted(self._sizes)})")
        self._selected = None if size is None else self._sizes[size]

    def __call__(self, source: str | os.PathLike | bytes) -> np.ndarray:
        """Preprocess one image file (or its encoded bytes) into a float32 CHW array."""
        if isinstance(source, (bytes, bytearray)):
            return self.finish([self.sample(source)])[0]
        data = read_image_bytes(source)
        try:
            return self.finish([self.sample(data)])[0]
        except CorollaError as exc:
            raise type(exc)(f"{source}: {exc}") from None

    @property
    def label_keys(self) -> set[str]:
        """The keys of the labels that the ops make (their ``makes_labels``)."""
        return {key for op in self.ops for key in getattr(op, "makes_labels", ())}

    def sample(self, data: Any) -> np.ndarray:
        """Run the per-image ops on encoded bytes; usually returns uint8 HWC."""
        return self.labeled_sample(data)[0]

    def labeled_sample(self, data: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """:meth:`sample`, and the labels its ops made (:class:`LabeledImage`)."""
        if self._selected is not None:
            return self._selected.labeled_sample(data)
        index = 0
        labels: dict[str, Any] = {}
        if self._fused and isinstance(data, (bytes, bytearray, memoryview)):
            decoder, op = self.ops[0], self.ops[1]
            data = self._run(0, decoder.open, data)
            data = self._run(1, op.on_decode, data)
            data = self._run(0, decoder.finish, data)
            index = 2
        for i in range(index, self.split):
            made = self._run(i, self.ops[i], data)
            if isinstance(made, LabeledImage):
                labels.update(made.labels)
                made = made.image
            data = self._checked(i, data, made)
        return np.asarray(data), labels

    def finish(self, samples: Sequence[np.ndarray]) -> np.ndarray:
        """Stack samples of equal shape and run the batch ops: a float32 (or float16) NCHW batch."""
        if self._selected is not None:
            return self._selected.finish(samples)
        shapes = {np.shape(s) for s in samples}
        if len(shapes) > 1:
            raise DataError(
                f"{self.key_path}: images of one batch differ in shape ({', '.join(sorted(map(str, shapes)))}); "
                "end the transforms with a fixed-size op (RandCropImage, CropImage or ResizeImage with size)"
            )
        first = self.split
        if first < len(self.ops) and getattr(self.ops[first], "takes_samples", False):
            batch = self._run(first, self.ops[first].apply_batch, list(samples))
            first += 1
        else:
            batch = np.stack(samples)
        for i in range(first, len(self.ops)):
            batch = self._checked(i, batch, self._run(i, self.ops[i].apply_batch, batch))
        if batch.ndim != 4:
            raise DataError(f"{self.key_path}: expected images with 3 dimensions, found shape {batch.shape[1:]}")
        if self.output_layout == "hwc":
            batch = batch.transpose(0, 3, 1, 2)
        if batch.dtype not in (np.float32, np.float16):
            batch = batch.astype(np.float32)
        return np.ascontiguousarray(batch)

    def _run(self, index: int, function: Callable[[Any], Any], data: Any) -> Any:
        try:
            return function(data)
        except CorollaError as exc:
            if isinstance(exc, UnreadableImageError):
                raise
            raise type(exc)(f"{self.specs[index].key_path}: {exc}") from exc
        except Exception as exc:
            raise DataError(f"{self.specs[index].key_path}: {type(exc).__name__}: {exc}") from exc

    def _checked(self, index: int, given: Any, made: Any) -> Any:
        """``made``, unless op ``index`` broke the contract between ops: once an image is a
        float array (from ``NormalizeImage`` on), each op keeps it a float array of the same
        number of dimensions (an op returning uint8 there would train on garbage, silently)."""
        if isinstance(given, np.ndarray) and given.dtype.kind == "f":
            spec = self.specs[index]
            if not isinstance(made, np.ndarray):
                raise DataError(f"{spec.key_path}: {spec.name} returned {type(made).__name__}; after an op made the "
                                f"image {given.dtype}, each op must return a NumPy float array")
            if made.dtype.kind != "f" or made.ndim != given.ndim:
                raise DataError(f"{spec.key_path}: {spec.name} returned a {made.dtype} array of {made.ndim} dimensions "
                                f"from a {given.dtype} one of {given.ndim}; ops after NormalizeImage must keep the image "
                                "a float array (the same layout, or say so with output_layout)")
        return made

    def _check_layouts(self) -> str:
        """Follow the image layout through the ops; an op given the wrong layout is a config error."""
        if not self.ops:
            raise ConfigError(f"{self.key_path}: no transforms; the list must start with DecodeImage")
        if not getattr(self.ops[0], "decodes", False):
            raise ConfigError(f"{self.key_path}.0: the first transform must decode the image (DecodeImage), "
                              f"found {self.specs[0].name}")
        layout = "hwc"
        for op, spec in zip(self.ops, self.specs):
            needs = getattr(op, "layout", None)
            if needs is not None and needs != layout:
                if spec.name == "NormalizeImage":
                    hint = " Set its order: '' (HWC), as PaddleClas configs do."
                elif needs == "hwc":
                    hint = " Move it before ToCHWImage (or NormalizeImage with order: chw)."
                else:
                    hint = " Move it after ToCHWImage, or make the image CHW before it (NormalizeImage with order: chw)."
                raise ConfigError(f"{spec.key_path}: works on {needs.upper()} images, but the image is "
                                  f"{layout.upper()} at this point.{hint}")
            layout = getattr(op, "output_layout", layout)
        return layout


def build_pipeline(parts: Sequence[Part], registry: Registry, key_path: str) -> Pipeline:
    """Build the pipeline of a planned ``transform_ops`` (or ``Infer.transforms``) list."""
    return Pipeline([part.build(registry) for part in parts], parts, key_path)


def size_variants(parts: Sequence[Part], sizes: Sequence[tuple[int, int]], registry: Registry,
                  key_path: str) -> dict[tuple[int, int], Pipeline]:
    """For each ``(width, height)`` of ``sizes``, the pipeline of ``parts`` in which every op
    that sets the image size (``size``, or ``resize_short``: see
    :func:`corolla.config.planner.sets_image_size`) makes that size; its other keys stay."""
    from corolla.config.planner import sets_image_size

    def resized(part: Part, size: list[int]) -> Part:
        params = {k: v for k, v in part.params.items() if k != "resize_short"}
        return attrs.evolve(part, params={**params, "size": size})

    return {(w, h): build_pipeline([resized(p, [w, h]) if sets_image_size(p) else p for p in parts], registry, key_path)
            for w, h in sizes}


def build_batch_transform(registry: Registry, name: str, params: dict, key_path: str, *,
                          class_num: int | None = None) -> Callable[..., Any]:
    """One batch transform built by name (an op that combines others, such as
    ``OpSampler``); ``class_num`` fills its ``class_num`` argument unless the config sets it."""
    params = dict(params)
    if class_num is not None and "class_num" not in params:
        factory = registry.resolve("batch_transform", name, key_path=key_path).load()
        if _takes(factory, "class_num"):
            params["class_num"] = class_num
    return registry.build("batch_transform", name, params, key_path=key_path)


def _takes(factory: Callable[..., Any], argument: str) -> bool:
    try:
        return argument in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
