"""``corolla infer``: the trained model in Paddle's dynamic graph, on images, with label names."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import paddle

from corolla.config.load import get_path
from corolla.engine.builders import build_trained_model, inference_model
from corolla.data.placement import setup_environment
from corolla.engine.images import classify_images, list_images
from corolla.engine.postprocess import Prediction, build_postprocess
from corolla.plugin.outputs import pick_output
from corolla.data.pipeline import build_pipeline
from corolla.plugin.registry import Registry
from corolla.config.sections import GlobalSection


def adds_softmax(config: dict) -> bool:
    """PaddleClas's ``Arch.infer_add_softmax`` (default true): predictions are probabilities."""
    return bool(get_path(config, "Arch.infer_add_softmax", True))


@paddle.no_grad()
def class_scores(net: paddle.nn.Layer, images: np.ndarray, *, softmax: bool) -> np.ndarray:
    """The model's class probabilities (or logits) for a float32 NCHW batch."""
    logits = pick_output(net(paddle.to_tensor(images)))
    return (paddle.nn.functional.softmax(logits, axis=-1) if softmax else logits).numpy()


def infer(
    config: dict,
    registry: Registry,
    settings: GlobalSection,
    *,
    json_path: str | Path | None = None,
    echo: Callable[[str], Any] = print,
) -> list[Prediction]:
    """Classify ``Infer.infer_imgs`` with ``Infer.transforms`` and ``Infer.PostProcess``."""
    list_images(get_path(config, "Infer.infer_imgs"))  # a wrong path fails before the model is built
    pipeline = build_pipeline(get_path(config, "Infer.transforms"), registry, "Infer.transforms")
    postprocess = build_postprocess(get_path(config, "Infer.PostProcess"))
    setup_environment(settings.device, settings.seed, distributed=False)
    net = inference_model(build_trained_model(config, settings, registry))
    softmax = adds_softmax(config)

    def classify(files: list[Path]) -> list[Prediction]:
        scores = class_scores(net, np.stack([pipeline(str(f)) for f in files]), softmax=softmax)
        return postprocess(scores, [str(f) for f in files])

    return classify_images(config, classify, desc="infer", json_path=json_path, echo=echo)
