"""Built-in post-processes: what ``infer`` and ``predict`` make of the model's scores."""
from corolla.api import hookimpl, lazy


@hookimpl
def corolla_postprocesses() -> dict:
    table = lazy(f"{__name__}.classification", "Topk", "ThreshOutput")
    table.update(lazy(f"{__name__}.distillation", "DistillationPostProcess"))
    return table
