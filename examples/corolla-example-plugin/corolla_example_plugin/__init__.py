"""corolla-example-plugin: one component of each kind, registered lazily.

The hooks give ``"module:attribute"`` references (``corolla.api.lazy``), so that
``corolla plugins`` lists these names without importing Paddle; a component's module
is imported only when a config uses it.
"""
from corolla.api import hookimpl, lazy

_PACKAGE = __name__


@hookimpl
def corolla_backbones() -> dict:
    return lazy(f"{_PACKAGE}.models", "TinyConvNet")


@hookimpl
def corolla_transforms() -> dict:
    return lazy(f"{_PACKAGE}.augment", "RandomGrayscale")


@hookimpl
def corolla_batch_transforms() -> dict:
    return lazy(f"{_PACKAGE}.batch", "BatchGaussianNoise")


@hookimpl
def corolla_losses() -> dict:
    return lazy(f"{_PACKAGE}.focal", "FocalLoss")


@hookimpl
def corolla_datasets() -> dict:
    return lazy(f"{_PACKAGE}.csv_dataset", "CsvDataset")


@hookimpl
def corolla_metrics() -> dict:
    return lazy(f"{_PACKAGE}.recall", "BalancedAccuracy")


@hookimpl
def corolla_callbacks() -> dict:
    return lazy(f"{_PACKAGE}.epoch_csv", "EpochCSV")
