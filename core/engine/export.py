"""``corolla export``: the inference model as a static graph, with its preprocessing beside it.

The folder ``Global.save_inference_dir`` receives the program and weights that the
running Paddle writes (``inference.json`` on Paddle 3, ``inference.pdmodel`` on 2.6,
and ``inference.pdiparams``), ``inference.yml`` (the preprocessing ops, the
post-process and the input shape), and ``label_list.txt`` when
``Infer.PostProcess.class_id_map_file`` is set.

The export is written to a temporary folder beside the target, checked by loading it
and running it once, and only then moved into place: a full disk or a crash leaves the
previous export whole.
"""
from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np
import paddle
import yaml

import corolla
from corolla.config.plan import Plan
from corolla.data.placement import setup_environment
from corolla.engine.builders import build_trained_model, inference_model
from corolla.engine.files import WriteError
from corolla.engine.formatting import progress
from corolla.plugin.errors import CorollaError

MODEL_PREFIX = "inference"
RECORD_NAME = "inference.yml"
LABELS_NAME = "label_list.txt"


class ExportedModel(paddle.nn.Layer):
    """The predicting network, its logits turned into probabilities when asked."""

    def __init__(self, net: paddle.nn.Layer, softmax: bool) -> None:
        super().__init__()
        self.net = net
        self.softmax = softmax

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.net(x)
        if isinstance(out, dict):
            out = out["logits"]
        if self.softmax:
            out = paddle.nn.functional.softmax(out, axis=-1)
        return out


def export(plan: Plan) -> Path:
    """Write the exported model of the plan into ``Global.save_inference_dir``; return the folder."""
    plan.require("export")
    settings = plan.settings
    plan.postprocess.build(plan.registry)  # a missing class_id_map_file fails before anything is written
    setup_environment(settings.device, settings.seed, distributed=False)
    target = Path(settings.save_inference_dir)
    staging = target.with_name(f".{target.name}.exporting-{os.getpid()}")
    steps = ["build", "trace and save", "record preprocessing", "check"]
    try:
        for step in progress(steps, total=len(steps), desc="export", enabled=True):
            if step == "build":
                exported = ExportedModel(inference_model(build_trained_model(plan)), plan.model.infer_add_softmax)
                exported.train(False)
            elif step == "trace and save":
                spec = paddle.static.InputSpec([None, *settings.image_shape], "float32", name="x")
                static = paddle.jit.to_static(exported, input_spec=[spec], full_graph=True)
                staging.mkdir(parents=True)
                paddle.jit.save(static, str(staging / MODEL_PREFIX))
            elif step == "record preprocessing":
                _write_record(plan, staging)
            else:
                _check(staging, plan)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        kept = "the previous export there is intact" if target.exists() else "nothing was left behind"
        raise WriteError(f"could not export to {target}: {exc.strerror or exc}; {kept}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _move_into_place(staging, target)
    return target


def _check(folder: Path, plan: Plan) -> None:
    """Load the written export and run it once: a truncated file (a full disk that Paddle
    did not report) or a model that does not load is an error, before anything is replaced."""
    from corolla.engine.predict import Predictor

    try:
        predictor = Predictor(folder, plan.registry, threads=1)
        scores = predictor.scores(np.zeros([1, *plan.settings.image_shape], np.float32))
    except (RuntimeError, ValueError, OSError, CorollaError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise WriteError(f"the exported model does not load back ({type(exc).__name__}: {reason}); "
                         "is the disk full? The previous export is intact") from exc
    if scores.ndim != 2 or not np.isfinite(scores).all():
        raise WriteError(f"the exported model gave {scores.shape} scores with non-finite values on a blank image")


def _move_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` with the checked ``staging`` folder (two renames on one filesystem)."""
    old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _write_record(plan: Plan, target: Path) -> None:
    postprocess = copy.deepcopy(plan.infer.PostProcess) or {"name": "Topk", "topk": 5}
    label_file = postprocess.get("class_id_map_file")
    if label_file:
        shutil.copyfile(Path(label_file), target / LABELS_NAME)
        postprocess["class_id_map_file"] = LABELS_NAME
    record = {
        "Global": {
            "model_name": plan.model.part.name,
            "image_shape": list(plan.settings.image_shape),
            "output": "probabilities" if plan.model.infer_add_softmax else "logits",
            "corolla_version": corolla.__version__,
        },
        "PreProcess": {"transform_ops": copy.deepcopy(plan.infer.transforms)},
        "PostProcess": postprocess,
    }
    (target / RECORD_NAME).write_text(yaml.safe_dump(record, sort_keys=False, allow_unicode=True), encoding="utf-8")
