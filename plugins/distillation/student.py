"""Write the best student of a distillation run as a checkpoint of its own."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import paddle

from corolla.api import load_state_dict_file, write_checkpoint

BEST = "best_model"
STUDENT_SUFFIX = "_student"


def predicting_model_name(model: paddle.nn.Layer) -> str | None:
    """The ``infer_model_name`` of a distillation model, else None."""
    return getattr(model, "infer_model_name", None) if callable(getattr(model, "inference_model", None)) else None


def save_best_student(run: Any) -> Path | None:
    """Write ``best_model_student.pdparams`` when ``best_model.pdparams`` is newer; return its path."""
    name = predicting_model_name(run.model)
    if name is None or not run.is_main:
        return None
    best = Path(run.output_dir) / f"{BEST}.pdparams"
    target = best.with_name(f"{BEST}{STUDENT_SUFFIX}.pdparams")
    if not best.is_file() or (target.is_file() and target.stat().st_mtime_ns >= best.stat().st_mtime_ns):
        return None
    prefix = f"{name}."
    arrays = {key[len(prefix):]: value for key, value in load_state_dict_file(best).items() if key.startswith(prefix)}
    write_checkpoint(target.with_suffix(""), {".pdparams": arrays})
    return target
