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
from corolla.config.load import get_path
from corolla.engine.builders import arch_spec, build_trained_model, inference_model
from corolla.data.placement import setup_environment
from corolla.engine.formatting import progress
from corolla.engine.inference import adds_softmax
from corolla.plugin.errors import ConfigError
from corolla.plugin.registry import Registry
from corolla.config.sections import GlobalSection

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


def export(config: dict, registry: Registry, settings: GlobalSection) -> Path:
    """Write the exported model of ``config`` into ``Global.save_inference_dir``; return the folder."""
    transforms = get_path(config, "Infer.transforms")
    if not transforms:
        raise ConfigError("Infer.transforms: missing; export records the preprocessing that predict will use")
    setup_environment(settings.device, settings.seed, distributed=False)
    target = Path(settings.save_inference_dir)
    steps = ["build", "trace and save", "record preprocessing"]
    bar = progress(steps, total=len(steps), desc="export", enabled=True)
    for step in bar:
        if step == "build":
            net = inference_model(build_trained_model(config, settings, registry))
            exported = ExportedModel(net, adds_softmax(config))
            exported.train(False)
        elif step == "trace and save":
            spec = paddle.static.InputSpec([None, *settings.image_shape], "float32", name="x")
            static = paddle.jit.to_static(exported, input_spec=[spec], full_graph=True)
            target.mkdir(parents=True, exist_ok=True)
            paddle.jit.save(static, str(target / MODEL_PREFIX))
        else:
            _write_record(config, settings, target)
    return target


def _write_record(config: dict, settings: GlobalSection, target: Path) -> None:
    postprocess = copy.deepcopy(get_path(config, "Infer.PostProcess")) or {"name": "Topk", "topk": 5}
    label_file = postprocess.get("class_id_map_file")
    if label_file:
        source = Path(label_file)
        if not source.is_file():
            raise ConfigError(f"Infer.PostProcess.class_id_map_file: file not found: {source}")
        shutil.copyfile(source, target / LABELS_NAME)
        postprocess["class_id_map_file"] = LABELS_NAME
    record = {
        "Global": {
            "model_name": arch_spec(config, settings)[0],
            "image_shape": list(settings.image_shape),
            "output": "probabilities" if adds_softmax(config) else "logits",
            "corolla_version": corolla.__version__,
        },
        "PreProcess": {"transform_ops": copy.deepcopy(get_path(config, "Infer.transforms"))},
        "PostProcess": postprocess,
    }
    (target / RECORD_NAME).write_text(yaml.safe_dump(record, sort_keys=False, allow_unicode=True), encoding="utf-8")
