"""Built-in distillation plugin: warns when a frozen teacher would train with random weights,
and after each epoch keeps the best student on its own.

A distillation run's ``best_model.pdparams`` holds every sub-model (``Teacher.*``,
``Student.*``); this plugin writes ``best_model_student.pdparams`` beside it with only the
``infer_model_name`` model's weights, unprefixed, as PaddleClas does: a file that any
single-backbone config loads as ``pretrained`` or ``Global.pretrained_model``.
"""
import warnings
from typing import Any, Mapping

from corolla.api import hookimpl


@hookimpl
def corolla_train_start(run: Any) -> None:
    """Warn when a frozen model has random weights: nothing trains it, so the students learn from noise."""
    untrained = getattr(run.model, "frozen_without_weights", [])
    if untrained and run.is_main and run.resumed_from is None and not run.settings.pretrained_model:
        warnings.warn(
            f"{', '.join(untrained)}: frozen (freeze_params_list) with no pretrained weights, and "
            "Global.pretrained_model is not set: it keeps its random initialisation for the whole run. "
            f"Give it the weights of a trained model (-o {untrained[0]}.pretrained=<path>/best_model.pdparams)",
            UserWarning,
            stacklevel=2,
        )


@hookimpl
def corolla_epoch_end(run: Any, epoch: int, logs: Mapping[str, float]) -> None:
    from corolla.plugins.distillation.student import save_best_student

    save_best_student(run)
