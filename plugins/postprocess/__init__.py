"""Built-in post-processes: what ``infer`` and ``predict`` make of the model's scores."""
from corolla.api import hookimpl, lazy


@hookimpl
def corolla_postprocesses() -> dict:
    table = lazy(f"{__name__}.classification", "Topk", "ThreshOutput", "MultiLabelThreshOutput")
    table.update(lazy(f"{__name__}.attributes", "PersonAttribute", "VehicleAttribute", "TableAttribute"))
    table.update(lazy(f"{__name__}.distillation", "DistillationPostProcess"))
    return table
