"""Built-in optimizers and learning-rate schedules, registered lazily so that
listing them does not import paddle."""
from corolla.api import hookimpl, lazy

_PACKAGE = __name__


@hookimpl
def corolla_optimizers() -> dict:
    return lazy(f"{_PACKAGE}.optimizers", "Momentum", "SGD", "Adam", "AdamW", "RMSProp")


@hookimpl
def corolla_lr_schedules() -> dict:
    table = lazy(
        f"{_PACKAGE}.schedules", "Constant", "Cosine", "Linear", "Step", "MultiStepDecay", "Piecewise", "Exponential"
    )
    table["Polynomial"] = f"{_PACKAGE}.schedules:Linear"
    return table
