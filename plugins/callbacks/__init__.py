"""Built-in callbacks (console log, metrics file, curves, VisualDL, search trials), registered lazily."""
from corolla.api import hookimpl


@hookimpl
def corolla_callbacks() -> dict:
    return {
        "ConsoleLogger": f"{__name__}.console:ConsoleLogger",
        "MetricsLog": f"{__name__}.metrics_log:MetricsLog",
        "CurvePlot": f"{__name__}.curves:CurvePlot",
        "VisualDL": f"{__name__}.visualdl:VisualDL",
        "SearchTrial": f"{__name__}.search_trial:SearchTrial",
    }
