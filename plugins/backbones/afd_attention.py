"""Attention-based feature distillation (AFD, Ji et al. 2021): the models of PaddleClas's AFD config.

::

    - Student:
        name: AttentionModel
        models:
          - ResNet18: {name: ResNet18, return_patterns: ["blocks[0]", ..., "blocks[7]"]}
          - LinearTransformStudent: {name: LinearTransformStudent, qk_dim: 128, keys: [...],
                                     s_shapes: [[64, 56, 56], ...], t_shapes: [[64, 56, 56], ...]}

``AttentionModel`` runs its models one after the other, each on the previous one's output,
and returns every output merged into one dict: the backbone's ``logits`` and features, then
the transform's ``query``/``value`` (teacher) or ``bilinear_key``/``value`` (student), which
``AFDLoss`` reads. Shapes are ``[channels, height, width]`` of the feature maps named by
``keys``, as PaddleClas writes them; parameter names are PaddleClas's.
"""
from __future__ import annotations

import contextlib
from typing import Any, Sequence

import paddle
import paddle.nn.functional as F
from paddle import nn

from corolla.api import ComponentSpec, ConfigError, current_key_path, current_registry, item_spec, loading_frozen, named_spec
from corolla.plugins.backbones.distillation import per_model


class LinearBNReLU(nn.Layer):
    """Linear, BatchNorm1D and (optionally) ReLU."""

    def __init__(self, nin: int, nout: int) -> None:
        super().__init__()
        self.linear = nn.Linear(nin, nout)
        self.bn = nn.BatchNorm1D(nout)
        self.relu = nn.ReLU()

    def forward(self, x: paddle.Tensor, relu: bool = True) -> paddle.Tensor:
        x = self.bn(self.linear(x))
        return self.relu(x) if relu else x


def check_shapes(shapes: Any, name: str) -> list[list[int]]:
    """``[[channels, height, width], ...]`` of positive integers."""
    ok = isinstance(shapes, (list, tuple)) and shapes and all(
        isinstance(s, (list, tuple)) and len(s) == 3 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in s)
        for s in shapes
    )
    if not ok:
        raise ValueError(f"{name}: expected a non-empty list of [channels, height, width], found {shapes!r}")
    return [list(s) for s in shapes]


def unique_shapes(shapes: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """``(index of each shape among the distinct ones, the distinct shapes in first-seen order)``."""
    distinct: list[list[int]] = []
    for shape in shapes:
        if list(shape) not in distinct:
            distinct.append(list(shape))
    return [distinct.index(list(shape)) for shape in shapes], distinct


def _features(outputs: Any, keys: Sequence[str], who: str, shapes: list[list[int]], shapes_key: str) -> list[paddle.Tensor]:
    """The feature maps ``keys`` of the previous model's outputs, checked against ``shapes``
    (the ``shapes_key`` argument of the layer at key path ``who``)."""
    missing = [k for k in keys if not isinstance(outputs, dict) or k not in outputs]
    if missing:
        found = ", ".join(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        raise ConfigError(f"{who}: features {', '.join(missing)} not among the previous model's outputs ({found}); "
                          "give that model return_patterns with these layer names")
    features = [outputs[k] for k in keys]
    made = [list(f.shape[1:]) for f in features]
    if made != shapes and all(d > 0 for shape in made for d in shape):  # a compiled graph's unknown sizes are -1
        raise ConfigError(f"{who}.{shapes_key} is {shapes}, but the features {', '.join(keys)} are {made} "
                          "(PaddleClas's values are for 224 px images): set it to those")
    return features


class LinearTransformTeacher(nn.Layer):
    """The teacher's side of AFD: for each feature map ``f`` named by ``keys``, a query
    ``Q(mean_hw f)`` (``[N, T, qk_dim]`` over the T maps) and a value
    ``normalize(mean_c f^2)`` (``[N, H*W]`` per map)."""

    def __init__(self, qk_dim: int, t_shapes: list, keys: list) -> None:
        super().__init__()
        t_shapes = check_shapes(t_shapes, "t_shapes")
        if not isinstance(keys, (list, tuple)) or len(keys) != len(t_shapes):
            raise ValueError(f"keys: expected one feature name per t_shapes entry ({len(t_shapes)}), found {keys!r}")
        self.teacher_keys = list(keys)
        self.t_shapes, self.where = t_shapes, current_key_path() or type(self).__name__
        self.query_layer = nn.LayerList([LinearBNReLU(shape[0], qk_dim) for shape in t_shapes])

    def forward(self, outputs: Any) -> dict[str, Any]:
        features = _features(outputs, self.teacher_keys, self.where, self.t_shapes, "t_shapes")
        query = paddle.stack([layer(f.mean(axis=[2, 3]), relu=False) for f, layer in zip(features, self.query_layer)], axis=1)
        value = [F.normalize(f.pow(2).mean(axis=1).flatten(1), axis=1) for f in features]
        return {"query": query, "value": value}


class Sample(nn.Layer):
    """The student's spatial maps ``mean_c f^2`` pooled to one teacher map size: ``[N, S, h*w]``."""

    def __init__(self, t_shape: Sequence[int]) -> None:
        super().__init__()
        self.sample = nn.AdaptiveAvgPool2D((t_shape[1], t_shape[2]))

    def forward(self, features: Sequence[paddle.Tensor]) -> paddle.Tensor:
        return paddle.stack([self.sample(f.pow(2).mean(axis=1, keepdim=True)).flatten(1) for f in features], axis=1)


class LinearTransformStudent(nn.Layer):
    """The student's side of AFD: for its S feature maps, keys ``K(mean_hw f)`` mapped
    bilinearly to one key per teacher map (``bilinear_key``: ``[N, S, T, qk_dim]``), and
    values ``normalize(pool(mean_c f^2))`` at each distinct teacher map size (``[N, S, h*w]``)."""

    def __init__(self, qk_dim: int, t_shapes: list, s_shapes: list, keys: list) -> None:
        super().__init__()
        t_shapes, s_shapes = check_shapes(t_shapes, "t_shapes"), check_shapes(s_shapes, "s_shapes")
        if not isinstance(keys, (list, tuple)) or len(keys) != len(s_shapes):
            raise ValueError(f"keys: expected one feature name per s_shapes entry ({len(s_shapes)}), found {keys!r}")
        self.student_keys = list(keys)
        self.s_shapes, self.where = s_shapes, current_key_path() or type(self).__name__
        self.t, self.s, self.qk_dim = len(t_shapes), len(s_shapes), qk_dim
        self.samplers = nn.LayerList([Sample(shape) for shape in unique_shapes(t_shapes)[1]])
        self.key_layer = nn.LayerList([LinearBNReLU(shape[0], qk_dim) for shape in s_shapes])
        self.bilinear = LinearBNReLU(qk_dim, qk_dim * self.t)

    def forward(self, outputs: Any) -> dict[str, Any]:
        features = _features(outputs, self.student_keys, self.where, self.s_shapes, "s_shapes")
        batch = features[0].shape[0]
        key = paddle.stack([layer(f.mean(axis=[2, 3])) for f, layer in zip(features, self.key_layer)], axis=1)
        bilinear_key = self.bilinear(key.reshape([-1, self.qk_dim]), relu=False).reshape([batch, self.s, self.t, self.qk_dim])
        value = [F.normalize(sampler(features), axis=2) for sampler in self.samplers]
        return {"bilinear_key": bilinear_key, "value": value}


class AttentionModel(nn.Layer):
    """Models run in sequence, each on the previous one's output; returns their dict
    outputs merged (see the module docstring).

    ``models``: single-key items ``{Name: {name: BACKBONE, ...}}``, the first a backbone on
    the images. ``freeze_params_list``: one bool per model (frozen: no training, eval mode,
    no gradients; its ``pretrained`` weights must give every parameter). ``pretrained_list``:
    one ``pretrained`` value (or null) per model.
    ``class_num``: given to the first model unless its config sets one.
    """

    def __init__(self, *, models: list, pretrained_list: list | None = None, freeze_params_list: list | None = None,
                 class_num: int | None = None) -> None:
        super().__init__()
        where = current_key_path() or "Arch"
        specs = _model_specs(models, pretrained_list, class_num, where)
        frozen = per_model(freeze_params_list, len(specs), f"{where}.freeze_params_list", False)
        registry = current_registry()
        self.model_names: list[str] = []
        self.frozen: list[bool] = []
        for (model_name, spec), freeze in zip(specs, frozen):
            with loading_frozen(spec.key_path) if freeze else contextlib.nullcontext():
                model = registry.build("backbone", spec.name, spec.params, key_path=spec.key_path)
            for param in model.parameters() if freeze else ():
                param.trainable = False
            self.add_sublayer(model_name, model)
            self.model_names.append(model_name)
            self.frozen.append(bool(freeze))

    @staticmethod
    def corolla_children(params: dict, key_path: str) -> list[tuple[str, ComponentSpec]]:
        """The models this config builds (checked by the config plan before anything is built)."""
        specs = _model_specs(params.get("models"), params.get("pretrained_list"), params.get("class_num"), key_path)
        return [("backbone", spec) for _, spec in specs]

    def forward(self, x: paddle.Tensor) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        out: Any = x
        for name, freeze in zip(self.model_names, self.frozen):
            model = self._sub_layers[name]
            if freeze:
                for layer in [model, *model.sublayers()]:
                    layer.training = False  # the flags only: Layer.eval() would switch the global tracer
                with paddle.no_grad():
                    out = model(out)
            else:
                out = model(out)
            if not isinstance(out, dict):
                raise ConfigError(f"AttentionModel: model {name!r} returned a {type(out).__name__}, not a dict of named "
                                  "outputs; give the backbone return_patterns naming the features the next model reads")
            merged.update(out)
        return merged


def _model_specs(models: Any, pretrained_list: Any, class_num: int | None, where: str) -> list[tuple[str, ComponentSpec]]:
    """``(model name, backbone spec)`` per ``models`` item of the AttentionModel at key path
    ``where``, with ``pretrained_list`` and ``class_num`` applied."""
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{where}.models: expected a list of models like [{{ResNet18: {{name: ResNet18}}}}, ...], found {models!r}")
    pretrained = per_model(pretrained_list, len(models), f"{where}.pretrained_list", None)
    specs = []
    for index, item in enumerate(models):
        model = item_spec(item, f"{where}.models.{index}")
        backbone = named_spec(model.params, model.key_path)
        params = dict(backbone.params)
        if pretrained[index] is not None:
            params["pretrained"] = pretrained[index]
        if index == 0 and class_num is not None:
            params.setdefault("class_num", class_num)
        specs.append((model.name, ComponentSpec(backbone.name, params, backbone.key_path)))
    return specs
