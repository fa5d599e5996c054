"""Built-in distillation plugin: after each epoch, keeps the best student on its own.

A distillation run's ``best_model.pdparams`` holds every sub-model (``Teacher.*``,
``Student.*``); this plugin writes ``best_model_student.pdparams`` beside it with only the
``infer_model_name`` model's weights, unprefixed, as PaddleClas does: a file that any
single-backbone config loads as ``pretrained`` or ``Global.pretrained_model``.
"""
from typing import Any, Mapping

from corolla.api import hookimpl


@hookimpl
def corolla_epoch_end(run: Any, epoch: int, logs: Mapping[str, float]) -> None:
    from corolla.plugins.distillation.student import save_best_student

    save_best_student(run)
