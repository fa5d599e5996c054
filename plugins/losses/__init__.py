"""Built-in losses plugin: registers its components lazily, so listing them imports nothing heavy."""
from corolla.api import hookimpl, lazy

_PACKAGE = __name__


@hookimpl
def corolla_losses() -> dict:
    return {
        **lazy(f"{_PACKAGE}.celoss", "CELoss", "DistillationGTCELoss", "DistillationCELoss", "GoogLeNetLoss"),
        **lazy(f"{_PACKAGE}.divergence", "DistillationKLDivLoss", "DistillationDMLLoss", "DistillationDKDLoss"),
        **lazy(f"{_PACKAGE}.distance", "DistillationDistanceLoss", "DistillationL2Loss", "DistillationFSPLoss"),
        **lazy(f"{_PACKAGE}.multilabel", "MultiLabelLoss", "DistillationMultiLabelLoss"),
        **lazy(f"{_PACKAGE}.kd_variants", "DistillationDISTLoss", "DistillationSKDLoss", "DistillationWSLLoss"),
        **lazy(f"{_PACKAGE}.feature_pairs", "DistillationPairLoss"),
        **lazy(f"{_PACKAGE}.afd", "AFDLoss"),
    }
