"""``corolla infer``: the trained model in Paddle's dynamic graph, on images, with label names."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import paddle

from corolla.config.plan import Plan
from corolla.data.pipeline import build_pipeline
from corolla.data.placement import setup_environment
from corolla.engine.builders import build_trained_model, inference_model
from corolla.engine.images import classify_images, list_images
from corolla.engine.predictions import Prediction
from corolla.plugin.outputs import pick_output


def output_activation(plan: Plan) -> str | None:
    """What turns the model's logits into the scores a post-process reads: ``sigmoid`` for a
    multi-label task (``Global.use_multilabel``, as PaddleClas exports it), ``softmax`` unless
    ``Arch.infer_add_softmax`` is false, else None (the logits)."""
    if plan.settings.use_multilabel:
        return "sigmoid"
    return "softmax" if plan.model.infer_add_softmax else None


def activate(logits: paddle.Tensor, activation: str | None) -> paddle.Tensor:
    """``logits`` through :func:`output_activation`'s ``activation``."""
    if activation == "sigmoid":
        return paddle.nn.functional.sigmoid(logits)
    return paddle.nn.functional.softmax(logits, axis=-1) if activation == "softmax" else logits


@paddle.no_grad()
def class_scores(net: paddle.nn.Layer, images: np.ndarray, *, activation: str | None) -> np.ndarray:
    """The model's class probabilities (or logits) for a float32 NCHW batch."""
    return activate(pick_output(net(paddle.to_tensor(images))), activation).numpy()


def infer(plan: Plan, *, json_path: str | Path | None = None, skip_bad_images: bool = False,
          echo: Callable[[str], Any] = print) -> list[Prediction]:
    """Classify ``Infer.infer_imgs`` with ``Infer.transforms`` and ``Infer.PostProcess``."""
    plan.require("infer")
    files = list_images(plan.infer.infer_imgs)  # a wrong path fails before the model is built
    pipeline = build_pipeline(plan.infer_transforms, plan.registry, "Infer.transforms")
    postprocess = plan.postprocess.build(plan.registry)
    setup_environment(plan.settings.device, plan.settings.seed, distributed=False)
    net = inference_model(build_trained_model(plan))
    activation = output_activation(plan)

    def classify(images: np.ndarray, names: list[str]) -> list[Prediction]:
        return postprocess(class_scores(net, images, activation=activation), names)

    return classify_images(files, pipeline, classify, batch_size=plan.infer.batch_size, desc="infer",
                           root=plan.infer.infer_imgs, json_path=json_path, skip_bad_images=skip_bad_images, echo=echo)
