"""Built-in datasets plugin: registers its components lazily, so listing them imports nothing heavy.

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
    return table
