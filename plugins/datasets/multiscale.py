"""``MultiScaleDataset``: PaddleClas's name for the list-file dataset of multi-scale training.

In PaddleClas the dataset takes ``(width, height, index)`` from its ``MultiScaleSampler``
and rebuilds its crop op at that size for each image. In corolla the size is the
sampler's and the loader's business (:class:`corolla.api.Sampler`): every transform that
sets a ``size`` makes each batch's size, whatever the dataset. So this is
``ImageNetDataset`` under PaddleClas's name and signature; with another sampler it is
just that. (PaddleClas also drops the other keys of the resized ops, such as
``interpolation``; corolla keeps them.)
"""
from __future__ import annotations

from corolla.api import Pipeline
from corolla.plugins.datasets.imagenet import ImageNetDataset


class MultiScaleDataset(ImageNetDataset):
    """``path label`` lines of ``cls_label_path`` under ``image_root`` (as ``ImageNetDataset``),
    for ``MultiScaleSampler``."""

    def __init__(self, image_root: str, cls_label_path: str, transform_ops: Pipeline | None = None,
                 delimiter: str | None = None) -> None:
        super().__init__(image_root, cls_label_path, transform_ops, delimiter)
