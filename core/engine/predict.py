"""``corolla predict``: an exported model run by Paddle Inference (oneDNN on CPU), batched."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import paddle
import yaml
from paddle import inference

from corolla.config.plan import Plan

from corolla.config.planner import plan_items, plan_named
from corolla.data.pipeline import build_pipeline
from corolla.data.placement import cpu_thread_count
from corolla.engine.export import MODEL_PREFIX, RECORD_NAME
from corolla.engine.images import classify_images, list_images
from corolla.engine.predictions import Prediction
from corolla.plugin.errors import DataError
from corolla.plugin.registry import Registry


class Predictor:
    """An exported model folder loaded for inference: preprocessing, network, post-process."""

    def __init__(self, model_dir: str | Path, registry: Registry, *, device: str = "cpu", threads: int | None = None) -> None:
        self.model_dir = Path(model_dir)
        record_path = self.model_dir / RECORD_NAME
        # Paddle 3 writes the program as .json, Paddle 2.6 as .pdmodel: read either
        program = next((p for p in (self.model_dir / f"{MODEL_PREFIX}{s}" for s in (".json", ".pdmodel")) if p.is_file()),
                       self.model_dir / f"{MODEL_PREFIX}.json")
        weights = self.model_dir / f"{MODEL_PREFIX}.pdiparams"
        for needed in (record_path, program, weights):
            if not needed.is_file():
                raise DataError(
                    f"Global.save_inference_dir: {needed} not found; run 'corolla export' with the same config first"
                )
        record = yaml.safe_load(record_path.read_text(encoding="utf-8")) or {}
        where = f"{record_path}: PreProcess.transform_ops"
        transforms = plan_items(registry, "transform", (record.get("PreProcess") or {}).get("transform_ops"), where)
        self.pipeline = build_pipeline(transforms, registry, where)
        postprocess = dict(record.get("PostProcess") or {"name": "Topk", "topk": 5})
        if postprocess.get("class_id_map_file"):
            postprocess["class_id_map_file"] = str(self.model_dir / postprocess["class_id_map_file"])
        self.postprocess = plan_named(registry, "postprocess", postprocess, f"{record_path}: PostProcess").build(registry)

        config = inference.Config(str(program), str(weights))
        if device == "gpu" and paddle.device.is_compiled_with_cuda():
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            config.enable_mkldnn()
            config.set_cpu_math_library_num_threads(threads or cpu_thread_count())
        config.switch_ir_optim(True)
        config.disable_glog_info()
        # enable_memory_optim() breaks create_predictor for PIR programs on Paddle 3.3 CPU
        self.predictor = inference.create_predictor(config)
        self._input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The exported model's output for a float32 NCHW batch."""
        self._input.reshape(list(images.shape))
        self._input.copy_from_cpu(np.ascontiguousarray(images, dtype=np.float32))
        self.predictor.run()
        return self._output.copy_to_cpu()

    def classify(self, images: np.ndarray, names: list[str]) -> list[Prediction]:
        """The predictions for a preprocessed batch of the images ``names``."""
        return self.postprocess(self.scores(images), names)

    def __call__(self, files: list[Path]) -> list[Prediction]:
        return self.classify(np.stack([self.pipeline(str(f)) for f in files]), [str(f) for f in files])


def predict(plan: Plan, *, json_path: str | Path | None = None, skip_bad_images: bool = False,
            echo: Callable[[str], Any] = print) -> list[Prediction]:
    """Classify ``Infer.infer_imgs`` with the model exported to ``Global.save_inference_dir``."""
    plan.require("predict")
    predictor = Predictor(plan.settings.save_inference_dir, plan.registry, device=plan.settings.device)
    files = list_images(plan.infer.infer_imgs)
    return classify_images(files, predictor.pipeline, predictor.classify, batch_size=plan.infer.batch_size,
                           desc="predict", root=plan.infer.infer_imgs, json_path=json_path,
                           skip_bad_images=skip_bad_images, echo=echo)
