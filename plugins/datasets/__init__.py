"""Built-in datasets plugin, and the samplers that batch them: registers its components lazily,
so listing them imports nothing heavy.

Datasets are map-style (``__len__``, ``__getitem__``) and never import paddle.
"""
from corolla.api import hookimpl, lazy

_PACKAGE = __name__


@hookimpl
def corolla_datasets() -> dict:
    table: dict = {}
    table.update(lazy(f"{_PACKAGE}.imagenet", "ImageNetDataset"))
    table.update(lazy(f"{_PACKAGE}.multilabel", "MultiLabelDataset"))
    table.update(lazy(f"{_PACKAGE}.folder", "ImageFolderDataset"))
    table.update(lazy(f"{_PACKAGE}.custom_label", "CustomLabelDataset"))
    table.update(lazy(f"{_PACKAGE}.multiscale", "MultiScaleDataset"))
    return table


@hookimpl
def corolla_samplers() -> dict:
    return lazy(f"{_PACKAGE}.samplers", "DistributedBatchSampler", "BatchSampler", "RASampler", "MultiScaleSampler")
