"""Built-in post-processes: what ``infer`` and ``predict`` make of the model's scores."""
from corolla.api import hookimpl, lazy


@hookimpl
def corolla_postprocesses() -> dict:
    return lazy(f"{__name__}.classification", "Topk", "ThreshOutput")
