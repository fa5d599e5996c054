"""``corolla export``: the inference model as a static graph, with its preprocessing beside it.

The folder ``Global.save_inference_dir`` receives ``inference.json`` and
``inference.pdiparams`` (Paddle 3's PIR program and weights), ``inference.yml``
(the preprocessing ops, the post-process and the input shape), and
``label_list.txt`` when ``Infer.PostProcess.class_id_map_file`` is set.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import paddle
import yaml

import corolla
from corolla.config.plan import Plan
from corolla.data.placement import setup_environment
from corolla.engine.builders import build_trained_model, inference_model
from corolla.engine.formatting import progress

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
    steps = ["build", "trace and save", "record preprocessing"]
    for step in progress(steps, total=len(steps), desc="export", enabled=True):
        if step == "build":
            exported = ExportedModel(inference_model(build_trained_model(plan)), plan.model.infer_add_softmax)
            exported.train(False)
        elif step == "trace and save":
            spec = paddle.static.InputSpec([None, *settings.image_shape], "float32", name="x")
            static = paddle.jit.to_static(exported, input_spec=[spec], full_graph=True)
            target.mkdir(parents=True, exist_ok=True)
            paddle.jit.save(static, str(target / MODEL_PREFIX))
        else:
            _write_record(plan, target)
    return target


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
