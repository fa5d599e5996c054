"""Built-in metrics, registered lazily so that listing them does not import paddle."""
from corolla.api import hookimpl, lazy


@hookimpl
def corolla_metrics() -> dict:
    return {
        **lazy(f"{__name__}.classification", "TopkAcc", "DistillationTopkAcc", "TprAtFpr", "GoogLeNetTopkAcc"),
        **lazy(f"{__name__}.multilabel", "ATTRMetric", "AccuracyScore", "HammingDistance"),
    }
