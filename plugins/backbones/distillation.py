"""DistillationModel: several registered backbones (teachers, students) run on the same batch.

::

    Arch:
      name: DistillationModel
      freeze_params_list: [True, False]
      infer_model_name: Student
      models:
        - Teacher: {name: ResNet50_vd, class_num: 102, pretrained: ./teacher.pdparams}
        - Student: {name: MobileNetV3_large_x1_0, class_num: 102, return_stages: [3]}

Each sub-model is built through the registry (any backbone, third-party ones included)
and loads its own ``pretrained``. Its parameters are named ``<ModelName>.<param>``, as in
PaddleClas, so PaddleClas distillation checkpoints load. ``forward`` returns
``{model_name: output}`` (a :class:`corolla.outputs.ModelOutputs`); an output is a dict of
named feature maps when that sub-model is given ``return_stages``.

A frozen sub-model (``freeze_params_list``) has no trainable parameters and always runs in
eval mode, without recording gradients. PaddleClas leaves frozen teachers in train mode, so
their BatchNorm statistics drift towards the student's training batches (augmented, mixed
with unlabeled images) and the teacher being distilled is not the teacher that was trained.
For the same reason its ``pretrained`` weights must give every parameter: a file of another
number of classes is an error, not a classifier left randomly initialised.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any

import paddle

from corolla.api import ComponentSpec, ConfigError, ModelOutputs, current_key_path, current_registry, item_spec, loading_frozen, named_spec

#: the key path of a DistillationModel built without one (a script's registry.build)
_ARCH = "Arch"


class DistillationModel(paddle.nn.Layer):
    """Teacher and student backbones side by side; outputs keyed by model name.

    ``models``: a list of single-key items ``{ModelName: {name: BACKBONE, ...its arguments}}``.
    ``freeze_params_list``: one bool per model (frozen: no training, eval mode).
    ``infer_model_name``: the model that predicts, exports and is evaluated by plain
    losses and metrics (default ``Student`` when there is one, else the first unfrozen).
    ``pretrained_list``: one ``pretrained`` value (or null) per model, the PaddleClas way
    to give what each model's own ``pretrained`` key can give.
    ``class_num``: given to every model whose config does not set its own (a model that
    sets another is warned about). ``frozen_without_weights``: the key paths of the frozen
    models given no ``pretrained`` weights.
    ``use_ssld``: PaddleClas's key that its DistillationModel ignores: ignored here too, with a warning.
    """

    def __init__(
        self,
        *,
        models: list,
        freeze_params_list: list | None = None,
        infer_model_name: str | None = None,
        pretrained_list: list | None = None,
        class_num: int | None = None,
        use_ssld: Any = None,
    ) -> None:
        super().__init__()
        where = current_key_path() or _ARCH
        if use_ssld is not None:
            warnings.warn(f"{where}.use_ssld: key not used by PaddleClas's DistillationModel nor by corolla, ignored "
                          f"(found {use_ssld!r}; each model's own use_ssld is read by its backbone)", UserWarning, stacklevel=2)
        if not isinstance(models, list) or not models:
            raise ConfigError(f"{where}.models: expected a list of models like [{{Teacher: {{name: ResNet50_vd}}}}, ...], found {models!r}")
        frozen = per_model(freeze_params_list, len(models), f"{where}.freeze_params_list", False)
        pretrained = per_model(pretrained_list, len(models), f"{where}.pretrained_list", None)
        registry = current_registry()
        self.model_names: list[str] = []
        self.frozen: dict[str, bool] = {}
        self.frozen_without_weights: list[str] = []
        for index, item in enumerate(models):
            model_name, backbone = _model_spec(item, index, class_num, pretrained[index], where)
            if model_name in self.frozen:
                raise ConfigError(f"{where}.models.{index}: model name {model_name!r} is used twice; each model needs its own name")
            _warn_of_own_class_num(backbone, class_num, where)
            with loading_frozen(backbone.key_path) if frozen[index] else contextlib.nullcontext():
                model = registry.build("backbone", backbone.name, backbone.params, key_path=backbone.key_path)
            if frozen[index] and not backbone.params.get("pretrained"):
                self.frozen_without_weights.append(backbone.key_path)
            if not isinstance(model, paddle.nn.Layer):
                raise ConfigError(f"{backbone.key_path}: backbone {backbone.name!r} built a {type(model).__name__}, not a paddle.nn.Layer")
            if frozen[index]:
                for param in model.parameters():
                    param.trainable = False
            self.add_sublayer(model_name, model)
            self.model_names.append(model_name)
            self.frozen[model_name] = bool(frozen[index])
        self.infer_model_name = self._choose_infer_model(infer_model_name, where)
        self._keep_frozen_models_inferring()

    @staticmethod
    def corolla_children(params: dict, key_path: str) -> list[tuple[str, ComponentSpec]]:
        """The sub-models this config builds, with ``class_num`` and ``pretrained_list``
        applied (checked by the config plan before anything is built)."""
        models = params.get("models")
        if not isinstance(models, list) or not models:
            raise ConfigError(f"{key_path}.models: expected a list of models like [{{Teacher: {{name: ResNet50_vd}}}}, ...], found {models!r}")
        pretrained = per_model(params.get("pretrained_list"), len(models), f"{key_path}.pretrained_list", None)
        return [("backbone", _model_spec(item, index, params.get("class_num"), pretrained[index], key_path)[1])
                for index, item in enumerate(models)]

    def forward(self, x: paddle.Tensor) -> ModelOutputs:
        self._keep_frozen_models_inferring()  # also when a wrapper (DataParallel) switched modes
        outputs = {}
        for name in self.model_names:
            model = self._sub_layers[name]
            if self.frozen[name]:
                with paddle.no_grad():
                    outputs[name] = model(x)
            else:
                outputs[name] = model(x)
        return ModelOutputs(outputs, primary=self.infer_model_name)

    def train(self, *mode: bool) -> DistillationModel:
        """Switch to training like any layer, except that frozen models stay in eval mode
        (``mode`` is Paddle 3's optional argument; Paddle 2.6 has none)."""
        super().train(*mode)
        self._keep_frozen_models_inferring()
        return self

    def eval(self) -> DistillationModel:
        super().eval()
        self._keep_frozen_models_inferring()
        return self

    def inference_model(self) -> paddle.nn.Layer:
        """The ``infer_model_name`` model: what ``export``, ``infer`` and ``predict`` run."""
        return self._sub_layers[self.infer_model_name]

    def _keep_frozen_models_inferring(self) -> None:
        for name in self.model_names:
            if self.frozen[name]:
                model = self._sub_layers[name]
                # set the flags directly: Layer.eval() would also switch the global tracer
                for layer in [model, *model.sublayers()]:
                    layer.training = False

    def _choose_infer_model(self, infer_model_name: str | None, where: str) -> str:
        if infer_model_name is None:
            if "Student" in self.frozen:
                return "Student"
            unfrozen = [n for n in self.model_names if not self.frozen[n]]
            return (unfrozen or self.model_names)[0]
        if infer_model_name not in self.frozen:
            raise ConfigError(
                f"{where}.infer_model_name: expected one of the model names {', '.join(self.model_names)}, "
                f"found {infer_model_name!r}"
            )
        return infer_model_name


def per_model(value: Any, count: int, key_path: str, default: Any) -> list:
    """``value`` (at ``key_path``): a list with one entry per model, or None for ``default`` each."""
    if value is None:
        return [default] * count
    if not isinstance(value, list) or len(value) != count:
        raise ConfigError(f"{key_path}: expected null or a list with one entry per model ({count}), found {value!r}")
    if key_path.endswith(".freeze_params_list") and not all(isinstance(v, bool) for v in value):
        raise ConfigError(f"{key_path}: expected true/false for each model, found {value!r}")
    return value


def _warn_of_own_class_num(backbone: ComponentSpec, class_num: int | None, where: str) -> None:
    own = backbone.params.get("class_num")
    if class_num is not None and own != class_num:
        warnings.warn(
            f"{backbone.key_path}.class_num is {own}, not {where}.class_num ({class_num}): the model keeps its own "
            f"(set -o {backbone.key_path}.class_num=... to change it)", UserWarning, stacklevel=2)


def _model_spec(item: Any, index: int, class_num: int | None, pretrained: Any, where: str) -> tuple[str, ComponentSpec]:
    """``(model name, backbone spec)`` of one ``models`` item of the DistillationModel at
    key path ``where``, with its defaults applied."""
    model = item_spec(item, f"{where}.models.{index}")
    if not model.params:
        raise ConfigError(f"{model.key_path}: expected the model's settings, like {{name: ResNet50_vd, class_num: 10}}, found nothing")
    backbone = named_spec(model.params, model.key_path)
    params = dict(backbone.params)
    if class_num is not None:
        params.setdefault("class_num", class_num)
    if pretrained is not None:
        if params.get("pretrained"):
            raise ConfigError(
                f"{where}.pretrained_list.{index}: {model.key_path}.pretrained is also set; give the weights in one place"
            )
        params["pretrained"] = pretrained
    return model.name, ComponentSpec(backbone.name, params, backbone.key_path)
