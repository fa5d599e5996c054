"""Building blocks and helpers that the backbone families share.

PaddleClas names parameters in two styles, and corolla keeps both so that its
``.pdparams`` load unchanged: the "legendary" models (ResNet, VGG, MobileNetV1/V3,
PP-LCNet) call a conv-BN pair ``conv``/``bn`` (:class:`ConvBN`), the older
"model zoo" ones ``_conv``/``_batch_norm`` (:class:`ZooConvBN`).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Container, Mapping, Sequence, TypeVar

import paddle
from paddle import nn

from corolla.plugin.errors import ComponentArgumentError
from corolla.engine.weights import PretrainedWeights, describe_weights, load_pretrained

#: activation name (as PaddleClas spells it) -> layer
ACTIVATIONS: dict[str, Callable[[], nn.Layer]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "swish": nn.Swish,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str | None) -> nn.Layer | None:
    """The activation layer called ``name``, or None for no activation."""
    if name is None:
        return None
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None


class LeanBatchNorm2D(nn.BatchNorm2D):
    """``nn.BatchNorm2D`` (same parameters, same maths, its ``data_format``), minus the
    per-call format checks and the training warning that Paddle 3.3 repeats on every
    call: about 2-3 us less per call (measured), what PaddleClas's older
    ``nn.BatchNorm`` also saves, and enough to show on small nets."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.batch_norm(
            x,
            self._mean,
            self._variance,
            weight=self.weight,
            bias=self.bias,
            training=self.training,
            momentum=self._momentum,
            epsilon=self._epsilon,
            data_format=self._data_format,
            use_global_stats=self._use_global_stats,
        )


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    *,
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
    groups: int = 1,
    lr_mult: float = 1.0,
    data_format: str = "NCHW",
) -> tuple[nn.Conv2D, LeanBatchNorm2D]:
    """A bias-free convolution and its BatchNorm, both with learning-rate multiplier ``lr_mult``,
    for ``data_format`` ("NCHW" or "NHWC") input.

    ``padding`` defaults to ``(kernel_size - 1) // 2`` (same size at stride 1).
    """
    if padding is None:
        padding = (kernel_size - 1) // 2 if isinstance(kernel_size, int) else tuple((k - 1) // 2 for k in kernel_size)
    conv = nn.Conv2D(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        groups=groups,
        weight_attr=paddle.ParamAttr(learning_rate=lr_mult),
        bias_attr=False,
        data_format=data_format,
    )
    norm = LeanBatchNorm2D(
        out_channels,
        weight_attr=paddle.ParamAttr(learning_rate=lr_mult),
        bias_attr=paddle.ParamAttr(learning_rate=lr_mult),
        data_format=data_format,
    )
    return conv, norm


class ConvBN(nn.Layer):
    """conv -> BN -> activation; parameters ``conv.weight``, ``bn.*`` (PaddleClas legendary models).

    Takes the keyword arguments of :func:`conv_bn` plus ``act`` (a name of
    :data:`ACTIVATIONS`, or None).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *, act: str | None = None, **conv_args: Any) -> None:
        super().__init__()
        self.conv, self.bn = conv_bn(in_channels, out_channels, kernel_size, **conv_args)
        self.act = activation(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(self.conv(x))
        return x if self.act is None else self.act(x)


class ZooConvBN(nn.Layer):
    """:class:`ConvBN` with parameters ``_conv.weight``, ``_batch_norm.*`` (PaddleClas model_zoo models)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *, act: str | None = None, **conv_args: Any) -> None:
        super().__init__()
        self._conv, self._batch_norm = conv_bn(in_channels, out_channels, kernel_size, **conv_args)
        self.act = activation(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._batch_norm(self._conv(x))
        return x if self.act is None else self.act(x)


# --- lr_mult_list and return_stages ---------------------------------------------------


def resolve_lr_mult_list(name: str, lr_mult_list: Sequence[float] | None, groups: Sequence[str]) -> list[float]:
    """One learning-rate multiplier per parameter group (all 1.0 when not given).

    ``groups`` names the groups in order, for the error message.
    """
    if lr_mult_list is None:
        return [1.0] * len(groups)
    values = list(lr_mult_list) if isinstance(lr_mult_list, (list, tuple)) else None
    if values is None or len(values) != len(groups) or not all(_is_number(v) and v >= 0 for v in values):
        raise ComponentArgumentError(
            f"{name}: lr_mult_list needs {len(groups)} non-negative numbers, one per group "
            f"({', '.join(groups)}); got {lr_mult_list!r}"
        )
    return [float(v) for v in values]


def resolve_return_stages(name: str, return_stages: bool | int | Sequence[int] | None, count: int) -> list[int]:
    """The stage indices whose outputs the model also returns: ``True`` means all
    ``count`` stages, an int one stage, None/False none."""
    if return_stages is None or return_stages is False:
        return []
    if return_stages is True:
        return list(range(count))
    stages = [return_stages] if isinstance(return_stages, int) else return_stages
    if not isinstance(stages, (list, tuple)) or not stages or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < count for i in stages
    ):
        raise ComponentArgumentError(
            f"{name}: return_stages must be True or stage indices from 0 to {count - 1}; got {return_stages!r}"
        )
    return sorted(set(stages))


def run_stages(
    stages: Sequence[Sequence[nn.Layer]], x: paddle.Tensor, wanted: Container[int], features: dict[str, paddle.Tensor]
) -> paddle.Tensor:
    """Run the layers of each stage in order; the output of stage ``i`` in ``wanted``
    also goes to ``features["stage{i}"]``."""
    for index, stage in enumerate(stages):
        for layer in stage:
            x = layer(x)
        if index in wanted:
            features[f"stage{index}"] = x
    return x


def with_features(logits: paddle.Tensor, features: dict[str, paddle.Tensor], wanted: bool) -> paddle.Tensor | dict[str, paddle.Tensor]:
    """The model output: logits, or ``{"logits": ..., "stage{i}": ...}`` when stages were asked for."""
    return {"logits": logits, **features} if wanted else logits


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- builders -------------------------------------------------------------------------

COMMON_ARGS_DOC = """Keyword arguments:
  class_num: number of classes of the classifier.
  pretrained: False, True (PaddleClas's ImageNet weights for this name), a .pdparams path or a URL.
  use_ssld: with pretrained=True, load the SSLD-distilled weights instead.
  lr_mult_list: one learning-rate multiplier per parameter group (the classifier keeps 1.0).
  return_stages: True, or stage indices; forward then returns {"logits", "stage<i>", ...}."""

_Builder = TypeVar("_Builder", bound=Callable[..., nn.Layer])


def finish_builder(build: _Builder, name: str, summary: str, table: Mapping[str, PretrainedWeights]) -> _Builder:
    """Give ``build`` its registered ``name``, a docstring and the ``corolla_details``
    that ``corolla plugins show NAME`` prints (the published weights)."""
    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{summary}\n\n{COMMON_ARGS_DOC}"
    build.corolla_details = functools.partial(describe_weights, name, table)
    return build


def weights_table(url_pattern: str, top1: Mapping[str, float]) -> dict[str, PretrainedWeights]:
    """PaddleClas's published files: name -> ``url_pattern.format(name)`` with its ImageNet top-1."""
    return {name: PretrainedWeights(url_pattern.format(name), accuracy) for name, accuracy in top1.items()}


def make_builder(
    name: str, model_class: type[nn.Layer], table: Mapping[str, PretrainedWeights], summary: str, **architecture: Any
) -> Callable[..., nn.Layer]:
    """The registered builder of ``name``: ``model_class(name=name, **architecture, ...)``
    with the weights of ``table`` loaded.

    Its keyword arguments are ``class_num``, ``pretrained``, ``use_ssld``, then the other
    arguments of ``model_class`` that ``architecture`` does not fix; its signature says so,
    which is what config validation and ``corolla plugins show`` read.
    """

    def build(*, pretrained: bool | str = False, use_ssld: bool = False, **options: Any) -> nn.Layer:
        model = model_class(name=name, **architecture, **options)
        return load_pretrained(model, pretrained, name=name, table=table, use_ssld=use_ssld)

    options = [
        param.replace(kind=param.KEYWORD_ONLY)
        for param in inspect.signature(model_class).parameters.values()
        if param.name not in {"name", *architecture}
    ]
    class_num = [param for param in options if param.name == "class_num"]
    loading = list(inspect.signature(build).parameters.values())[:2]  # pretrained, use_ssld
    others = [param for param in options if param.name != "class_num"]
    build.__signature__ = inspect.Signature(class_num + loading + others, return_annotation=model_class.__name__)
    return finish_builder(build, name, summary, table)
