"""``corolla export``: the inference model as a static graph and/or ONNX, with its preprocessing beside it.

The folder ``Global.save_inference_dir`` receives, per format asked for:

- ``paddle`` (the default): the program and weights that the running Paddle writes
  (``inference.json`` on Paddle 3, ``inference.pdmodel`` on 2.6, and ``inference.pdiparams``);
- ``onnx``: ``inference.onnx``, converted from that program by paddle2onnx (the ``onnx``
  extra; see :mod:`corolla.engine.onnx_convert` for the opset and the dynamic batch);

and always ``inference.yml`` (the preprocessing ops, the post-process, the input shape, the
formats written) and ``label_list.txt`` when ``Infer.PostProcess.class_id_map_file`` is set.

The export is written to a temporary folder beside the target, checked by loading each
format and running it once on a test batch (the ONNX model's output must match Paddle
Inference's), and only then moved into place: a full disk, a failed conversion or a crash
leaves the previous export whole. Only an earlier export (a folder holding nothing but the files
above) or an empty folder is replaced, and never the current folder: anything else at the
target is refused before anything is built, so an export never deletes what it did not write.
"""
from __future__ import annotations

import copy
import io
import os
import shutil
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import paddle
import yaml
from PIL import Image

import corolla
from corolla.config.plan import Plan
from corolla.data.pipeline import build_pipeline
from corolla.data.placement import setup_environment
from corolla.engine.builders import build_trained_model, inference_model
from corolla.data.atomic import WriteError
from corolla.engine.formatting import progress
from corolla.engine.inference import activate, output_activation
from corolla.engine.onnx_convert import ConversionError, convert
from corolla.engine.predict import RECORD_NAME, Predictor
from corolla.engine.runtimes import MODEL_PREFIX, ONNX_NAME, PARAMS_NAME, program_file, require, save_program
from corolla.plugin.errors import ConfigError

LABELS_NAME = "label_list.txt"
#: ``corolla export --format``: ``all`` is every one
FORMATS = ("paddle", "onnx")
#: how far the ONNX model's output may stray from Paddle Inference's, relative to its largest value
ONNX_TOLERANCE = 1e-3
_RUNTIME = {"paddle": "Paddle Inference", "onnxruntime": "ONNX Runtime"}
#: every file an export writes (the program is ``.json`` on Paddle 3, ``.pdmodel`` on 2.6): a
#: folder holding only these is an earlier export, which a new one may replace
EXPORT_FILES = frozenset({f"{MODEL_PREFIX}.json", f"{MODEL_PREFIX}.pdmodel", PARAMS_NAME, f"{PARAMS_NAME}.info",
                          ONNX_NAME, RECORD_NAME, LABELS_NAME})


class ExportedModel(paddle.nn.Layer):
    """The predicting network, its logits turned into probabilities by ``activation``
    (:func:`~corolla.engine.inference.output_activation`)."""

    def __init__(self, net: paddle.nn.Layer, activation: str | None) -> None:
        super().__init__()
        self.net = net
        self.activation = activation

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.net(x)
        if isinstance(out, dict):
            out = out["logits"]
        return activate(out, self.activation)


def export_formats(names: Sequence[str]) -> tuple[str, ...]:
    """The formats ``names`` (``all`` for every one) in :data:`FORMATS` order."""
    unknown = [name for name in names if name not in (*FORMATS, "all")]
    if unknown or not names:
        raise ConfigError(f"--format: expected {', '.join(FORMATS)} or all, found {', '.join(unknown) or 'nothing'}")
    return tuple(f for f in FORMATS if f in names or "all" in names)


def export(plan: Plan, *, formats: Sequence[str] = ("paddle",)) -> Path:
    """Write the exported model of the plan into ``Global.save_inference_dir`` in
    ``formats`` (``paddle``, ``onnx``, ``all``); return the folder."""
    plan.require("export")
    formats = export_formats(formats)
    target = Path(plan.settings.save_inference_dir).resolve()  # "." has no name to put the staging folder beside
    _refuse_unless_replaceable(target)
    _check_input_shape(plan, formats)
    if "onnx" in formats:  # before anything is built or written
        require("paddle2onnx", "onnx", "onnxruntime", purpose="corolla export --format onnx")
    settings = plan.settings
    plan.postprocess.build(plan.registry)  # a missing class_id_map_file fails before anything is written
    if target.is_dir() and any(target.iterdir()):
        print(f"[Export] {target} holds an earlier export: the new one replaces it once it is checked", flush=True)
    setup_environment(settings.device, settings.seed, distributed=False)
    staging = target.with_name(f".{target.name}.exporting-{os.getpid()}")
    steps = ["build", "trace and save", *(["convert to ONNX"] if "onnx" in formats else []), "record preprocessing", "check"]
    opset = None
    try:
        for step in progress(steps, total=len(steps), desc="export", enabled=True):
            if step == "build":
                exported = ExportedModel(inference_model(build_trained_model(plan)), output_activation(plan))
                exported.eval()
            elif step == "trace and save":
                staging.mkdir(parents=True)
                save_program(exported, staging / MODEL_PREFIX, settings.image_shape)
            elif step == "convert to ONNX":
                opset = convert(staging)
            elif step == "record preprocessing":
                _write_record(plan, staging, formats, opset)
            else:
                _check(staging, plan, formats)
        if "paddle" not in formats:  # it was written only to convert it
            for path in [program_file(staging), *staging.glob(f"{MODEL_PREFIX}.pdiparams*")]:
                path.unlink()
        _refuse_unless_replaceable(target)  # again: something may have been written there during the export
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        kept = "the previous export there is intact" if target.exists() else "nothing was left behind"
        raise WriteError(f"could not export to {target}: {exc.strerror or exc}; {kept}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _move_into_place(staging, target)
    return target


def _check(folder: Path, plan: Plan, formats: Sequence[str]) -> None:
    """Load the written export and run it once on a test batch of two (the batch size is
    free): a truncated file (a full disk that Paddle did not report) or a model that does
    not load is an error, before anything is replaced; so is an ONNX model whose output
    differs from Paddle Inference's. The Paddle program is there even for an ONNX-only export."""
    images = np.random.default_rng(0).standard_normal([2, *plan.settings.image_shape]).astype(np.float32)
    expected = _run_once(folder, plan, "paddle", images)
    if "onnx" in formats:
        got = _run_once(folder, plan, "onnxruntime", images)
        gap = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        scale = max(float(np.abs(expected).max()), 1e-6)
        if not gap <= ONNX_TOLERANCE * scale:
            raise ConversionError(f"the ONNX model's output {got.shape} differs from Paddle Inference's {expected.shape} "
                                  f"by up to {gap:.3g} (largest value {scale:.3g}) on a test batch; it was not exported")


def _run_once(folder: Path, plan: Plan, backend: str, images: np.ndarray) -> np.ndarray:
    try:
        scores = Predictor(folder, plan.registry, threads=1, backend=backend).scores(images)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors derive from Exception only
        reason = " ".join(str(exc).split())[:300]
        raise WriteError(f"the exported model does not load back into {_RUNTIME[backend]} ({type(exc).__name__}: {reason}); "
                         "is the disk full? The previous export is intact") from exc
    if scores.ndim != 2 or not np.isfinite(scores).all():
        raise WriteError(f"the exported model gave, in {_RUNTIME[backend]}, {scores.shape} scores with non-finite values on a test batch")
    return scores


def _check_input_shape(plan: Plan, formats: Sequence[str]) -> None:
    """The program (and its ONNX model) is traced for ``Global.image_shape``, and predict gives
    it what ``Infer.transforms`` make: ONNX Runtime takes no other shape (an error), Paddle
    Inference takes one a convolutional network can (a warning; some PaddleClas configs differ)."""
    photo = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 120, 150)).save(photo, format="JPEG")
    made = list(build_pipeline(plan.infer_transforms, plan.registry, "Infer.transforms")(photo.getvalue()).shape)
    if made == list(plan.settings.image_shape):
        return
    problem = (f"Global.image_shape is {list(plan.settings.image_shape)}, but Infer.transforms make {made} images "
               f"(from a 320x240 photo), the input predict gives the model traced for the first")
    fix = f"set -o Global.image_shape=[{','.join(map(str, made))}], or change Infer.transforms"
    if "onnx" in formats:
        raise ConfigError(f"{problem}, which ONNX Runtime refuses: {fix}")
    warnings.warn(f"{problem}: a network with layers of a fixed size (a ViT) fails on them in predict; {fix}",
                  UserWarning, stacklevel=3)


def _refuse_unless_replaceable(target: Path) -> None:
    """Raise a :class:`ConfigError` unless ``target`` is absent, an empty folder or an earlier
    export (a folder of :data:`EXPORT_FILES` only): nothing else is replaced by an export."""
    if not target.exists():
        return
    if target == Path.cwd().resolve():  # replacing it would leave the user's shell in a deleted folder
        raise ConfigError(f"Global.save_inference_dir: {target} is the current folder, which an export does not "
                          "replace; choose a folder inside it")
    if not target.is_dir():
        raise ConfigError(f"Global.save_inference_dir: {target} is a file, not a folder; "
                          "choose another Global.save_inference_dir")
    foreign = sorted(f"{p.name}/" if p.is_dir() else p.name
                     for p in target.iterdir() if p.name not in EXPORT_FILES or not p.is_file())
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(f"Global.save_inference_dir: {target} is not an earlier export (it holds {shown}); "
                          "an export replaces only an earlier export or an empty folder, so nothing there was "
                          "touched: choose another Global.save_inference_dir")


def _move_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` (absent, empty or an earlier export: :func:`_refuse_unless_replaceable`)
    with the checked ``staging`` folder (two renames on one filesystem)."""
    old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _write_record(plan: Plan, target: Path, formats: Sequence[str], opset: int | None) -> None:
    postprocess = copy.deepcopy(plan.infer.PostProcess) or {"name": "Topk", "topk": 5}
    label_file = postprocess.get("class_id_map_file")
    if label_file:
        shutil.copyfile(Path(label_file), target / LABELS_NAME)
        postprocess["class_id_map_file"] = LABELS_NAME
    record = {
        "Global": {
            "model_name": plan.model.part.name,
            "image_shape": list(plan.settings.image_shape),
            "output": {"softmax": "probabilities", "sigmoid": "sigmoid probabilities", None: "logits"}[output_activation(plan)],
            "formats": list(formats),
            **({"onnx_opset": opset} if opset is not None else {}),
            "corolla_version": corolla.__version__,
        },
        "PreProcess": {"transform_ops": copy.deepcopy(plan.infer.transforms)},
        "PostProcess": postprocess,
    }
    (target / RECORD_NAME).write_text(yaml.safe_dump(record, sort_keys=False, allow_unicode=True), encoding="utf-8")
