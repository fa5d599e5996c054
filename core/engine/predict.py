"""``corolla predict``: an exported model run by Paddle Inference (oneDNN on CPU) or ONNX Runtime, batched."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from corolla.config.plan import Plan
from corolla.config.planner import plan_items, plan_named
from corolla.data.pipeline import build_pipeline
from corolla.data.placement import cpu_thread_count, resolve_device
from corolla.engine.images import classify_images, list_images
from corolla.engine.predictions import Prediction
from corolla.engine.runtimes import open_runtime
from corolla.plugin.errors import DataError
from corolla.plugin.registry import Registry

RECORD_NAME = "inference.yml"


class Predictor:
    """An exported model folder loaded for inference: preprocessing, network, post-process.

    ``backend`` is ``"paddle"`` (Paddle Inference) or ``"onnxruntime"`` (the export's
    ``inference.onnx``); both read the same ``inference.yml``.
    """

    def __init__(self, model_dir: str | Path, registry: Registry, *, device: str = "cpu", threads: int | None = None,
                 backend: str = "paddle") -> None:
        self.model_dir = Path(model_dir)
        device = resolve_device(device)  # gpu without CUDA: the CPU, with a warning (as every verb)
        record_path = self.model_dir / RECORD_NAME
        if not record_path.is_file():
            raise DataError(f"Global.save_inference_dir: {record_path} not found; run 'corolla export' with the same config first")
        record = yaml.safe_load(record_path.read_text(encoding="utf-8")) or {}
        where = f"{record_path}: PreProcess.transform_ops"
        transforms = plan_items(registry, "transform", (record.get("PreProcess") or {}).get("transform_ops"), where)
        self.pipeline = build_pipeline(transforms, registry, where)
        postprocess = dict(record.get("PostProcess") or {"name": "Topk", "topk": 5})
        if postprocess.get("class_id_map_file"):
            postprocess["class_id_map_file"] = str(self.model_dir / postprocess["class_id_map_file"])
        self.postprocess = plan_named(registry, "postprocess", postprocess, f"{record_path}: PostProcess").build(registry)
        self.runtime = open_runtime(self.model_dir, backend, device=device, threads=threads or cpu_thread_count())

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The exported model's output for a float32 NCHW batch."""
        return self.runtime.run(images)[0]

    def classify(self, images: np.ndarray, names: list[str]) -> list[Prediction]:
        """The predictions for a preprocessed batch of the images ``names``."""
        return self.postprocess(self.scores(images), names)

    def __call__(self, files: list[Path]) -> list[Prediction]:
        return self.classify(np.stack([self.pipeline(str(f)) for f in files]), [str(f) for f in files])


def predict(plan: Plan, *, backend: str = "paddle", json_path: str | Path | None = None, skip_bad_images: bool = False,
            echo: Callable[[str], Any] = print) -> list[Prediction]:
    """Classify ``Infer.infer_imgs`` with the model exported to ``Global.save_inference_dir``,
    run by ``backend`` (``paddle`` or ``onnxruntime``)."""
    plan.require("predict")
    predictor = Predictor(plan.settings.save_inference_dir, plan.registry, device=plan.settings.device, backend=backend)
    files = list_images(plan.infer.infer_imgs)
    return classify_images(files, predictor.pipeline, predictor.classify, batch_size=plan.infer.batch_size,
                           desc="predict", root=plan.infer.infer_imgs, json_path=json_path,
                           skip_bad_images=skip_bad_images, echo=echo)
