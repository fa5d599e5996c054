"""The backbone contract every built-in family shares, and how a family's variants become builders.

A family module (``pplcnet.py``) holds, in this order: its building blocks, its model
class on :class:`Backbone`, its published weights (``WEIGHTS``, built with
:func:`corolla.api.weights_table`), the names it registers with the architecture
arguments each fixes (``VARIANTS``) and, last, ``BUILDERS = builders(Model, VARIANTS,
WEIGHTS)``. The plugin registers every ``VARIANTS`` name lazily, read from the source
(:func:`corolla.api.lazy_variants`), so each model is named once, where it is defined.
A family may also set ``MIN_INPUT_SIZE`` (an int, or a function of the name): the smallest
square input the tests run its models at (32 where unset).
"""
from __future__ import annotations

import difflib
import functools
import inspect
import re
import typing
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Sequence

import paddle
from paddle import nn

from corolla.api import ComponentArgumentError, PretrainedWeights, describe_weights, load_pretrained

StageSpec = typing.Union[bool, int, Sequence[int], None]


class Backbone(nn.Layer):
    """The arguments every backbone takes, handled once for all families.

    - ``class_num``: classes of the classifier (the subclass reads ``self.class_num``);
    - ``lr_mult_list``: one learning-rate multiplier per parameter group the family
      names (the classifier keeps 1.0); the model keeps the resolved list as
      ``self.lr_mult_list`` (empty for a family without groups);
    - ``return_stages``: ``True`` or stage indices: ``forward`` then returns
      ``{"logits": ..., "stage<i>": ...}`` with the output of each stage;
    - ``return_patterns``: sublayer names (PaddleClas's ``"blocks[3]"`` or ``"blocks.3"``)
      whose outputs join that dict, keyed as written (feature distillation by layer name).

    A subclass calls ``super().__init__(**contract)`` first, builds its layers, and
    then :meth:`finish` with its parameter groups and stages. Its ``forward`` returns
    the logits; the features are collected by forward hooks. ``self.model_name`` is the
    registered name, for error messages.
    """

    def __init__(
        self,
        *,
        name: str,
        class_num: int = 1000,
        lr_mult_list: Sequence[float] | None = None,
        return_stages: StageSpec = None,
        return_patterns: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.model_name = name
        self.class_num = class_num
        self.lr_mult_list: list[float] = []
        self.stage_count = 0
        self._contract = (name, lr_mult_list, return_stages, return_patterns)
        self._features: dict[str, paddle.Tensor] = {}

    def finish(
        self, *, lr_groups: Mapping[str, Sequence[nn.Layer]] | None = None, stages: Sequence[nn.Layer] = ()
    ) -> None:
        """Apply ``lr_mult_list`` to ``lr_groups`` (group name -> its layers, in
        ``lr_mult_list`` order) and hook the requested stage and pattern outputs
        (``stages``: the layer whose output is each stage's)."""
        name, lr_mult_list, return_stages, return_patterns = self._contract
        groups = dict(lr_groups or {})
        if groups:
            self.lr_mult_list = resolve_lr_mult_list(name, lr_mult_list, list(groups))
            for layers, mult in zip(groups.values(), self.lr_mult_list):
                for layer in layers:
                    for param in layer.parameters():
                        if not param.stop_gradient:
                            param.optimize_attr["learning_rate"] = mult
        elif lr_mult_list is not None:
            raise ComponentArgumentError(f"{name}: this family has no parameter groups; lr_mult_list is not supported")
        if return_stages not in (None, False) and not stages:
            raise ComponentArgumentError(f"{name}: this family has no stages; use return_patterns to name layers")
        self.stage_count = len(stages)
        wanted = {f"stage{i}": stages[i] for i in resolve_return_stages(name, return_stages, len(stages))}
        wanted.update(resolve_return_patterns(name, self, return_patterns))
        for key, layer in wanted.items():
            layer.register_forward_post_hook(functools.partial(_keep_output, self._features, key))
        if wanted:
            self.register_forward_post_hook(_with_features)


def split_stages(blocks: Iterable[nn.Layer], stage_ends: Sequence[int]) -> list[list[nn.Layer]]:
    """The blocks of each stage, given the index of each stage's last block (for ``finish``)."""
    blocks = list(blocks)
    starts = [0, *(end + 1 for end in stage_ends[:-1])]
    return [blocks[start : end + 1] for start, end in zip(starts, stage_ends, strict=True)]


def embedded_stages(stages: Sequence[Sequence[nn.Layer]]) -> dict[str, list[nn.Layer]]:
    """``lr_groups`` for a net whose every stage opens with its embedding (a patch embedding or
    downsampling layer, ``stages[i][0]``): the first embedding is the stem group, every later
    one goes with its stage."""
    groups = {"stem": [stages[0][0]]}
    groups.update({f"stage{i}": list(layers[1:] if i == 0 else layers) for i, layers in enumerate(stages)})
    return groups


def _keep_output(features: dict, key: str, layer: nn.Layer, inputs: Any, output: Any) -> None:
    features[key] = output


def _with_features(model: Backbone, inputs: Any, logits: Any) -> dict[str, Any]:
    output = {"logits": logits, **model._features}
    model._features.clear()
    return output


# --- argument checks ----------------------------------------------------------------------


def resolve_lr_mult_list(name: str, lr_mult_list: Sequence[float] | None, groups: Sequence[str]) -> list[float]:
    """One learning-rate multiplier per parameter group (all 1.0 when not given)."""
    if lr_mult_list is None:
        return [1.0] * len(groups)
    values = list(lr_mult_list) if isinstance(lr_mult_list, (list, tuple)) else None
    if values is None or len(values) != len(groups) or not all(_is_number(v) and v >= 0 for v in values):
        raise ComponentArgumentError(
            f"{name}: lr_mult_list needs {len(groups)} non-negative numbers, one per group "
            f"({', '.join(groups)}); got {lr_mult_list!r}"
        )
    return [float(v) for v in values]


def resolve_return_stages(name: str, return_stages: StageSpec, count: int) -> list[int]:
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


def resolve_return_patterns(name: str, model: nn.Layer, patterns: Sequence[str] | None) -> dict[str, nn.Layer]:
    """The sublayers named by ``patterns`` (``"blocks[3]"`` means ``blocks.3``), keyed as written."""
    if not patterns:
        return {}
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        raise ComponentArgumentError(f"{name}: return_patterns must be a list of layer names; got {patterns!r}")
    layers = dict(model.named_sublayers())
    found = {}
    for pattern in patterns:
        path = re.sub(r"\[(\d+)\]", r".\1", str(pattern))
        if path not in layers:
            close = difflib.get_close_matches(path, list(layers), n=5, cutoff=0.6)
            raise ComponentArgumentError(
                f"{name}: return_patterns: no layer {pattern!r}"
                + (f"; close: {', '.join(close)}" if close else f"; top-level layers: {', '.join(n for n in layers if '.' not in n)}")
            )
        found[str(pattern)] = layers[path]
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- builders -------------------------------------------------------------------------------

COMMON_ARGS_DOC = """Keyword arguments every backbone takes:
  class_num: number of classes of the classifier.
  pretrained: False, True (PaddleClas's ImageNet weights for this name), a .pdparams path or a URL.
  use_ssld: with pretrained=True, load the SSLD-distilled weights instead.
  lr_mult_list: one learning-rate multiplier per parameter group (the classifier keeps 1.0).
  return_stages: True, or stage indices; forward then returns {"logits", "stage<i>", ...}.
  return_patterns: layer names (e.g. "blocks[3]") whose outputs forward also returns."""


def builders(
    model: type[Backbone], variants: Mapping[str, Mapping[str, Any]], weights: Mapping[str, PretrainedWeights]
) -> SimpleNamespace:
    """The registered builder of every variant, as attributes (``BUILDERS.ResNet50_vd``).

    A variant's arguments are fixed architecture arguments of ``model``; ``model=Class``
    among them builds that class instead.
    """
    built = {}
    for name, arguments in variants.items():
        arguments = dict(arguments)
        built[name] = make_builder(name, arguments.pop("model", model), weights, **arguments)
    return SimpleNamespace(**built)


def make_builder(
    name: str, model_class: type[nn.Layer], table: Mapping[str, PretrainedWeights], **architecture: Any
) -> Callable[..., nn.Layer]:
    """The builder of ``name``: ``model_class(name=name, **architecture, ...)`` with the
    weights of ``table`` loaded.

    Its keyword arguments are ``class_num``, ``pretrained``, ``use_ssld``, the other
    arguments of ``model_class`` that ``architecture`` does not fix, then the rest of
    the contract; its signature says so (with evaluated annotations), which is what
    the config plan checks and ``corolla plugins show`` prints.
    """

    def build(*, pretrained: bool | str = False, use_ssld: bool = False, **options: Any) -> nn.Layer:
        model = model_class(name=name, **architecture, **options)
        return load_pretrained(model, pretrained, name=name, table=table, use_ssld=use_ssld)

    own = _keyword_parameters(model_class)
    contract = _keyword_parameters(Backbone) if any(p.kind is p.VAR_KEYWORD for p in own) else []
    options = [p for p in own + contract if p.kind is not p.VAR_KEYWORD and p.name not in {"name", *architecture}]
    options = list({p.name: p for p in options}.values())
    loading = list(inspect.signature(build).parameters.values())[:2]  # pretrained, use_ssld
    first = [p for p in options if p.name == "class_num"]
    last = [p for p in options if p.name in {"lr_mult_list", "return_stages", "return_patterns"}]
    middle = [p for p in options if p not in first and p not in last]
    build.__signature__ = inspect.Signature(first + loading + middle + last, return_annotation=model_class)
    build.__name__ = build.__qualname__ = name
    fixed = ", ".join(f"{key}={value!r}" for key, value in architecture.items())
    summary = inspect.getdoc(model_class) or model_class.__name__
    build.__doc__ = f"{name}: {model_class.__name__}({fixed}).\n\n{summary}\n\n{COMMON_ARGS_DOC}"
    build.corolla_details = functools.partial(describe_weights, name, table)
    return build


def _keyword_parameters(cls: type) -> list[inspect.Parameter]:
    """``cls.__init__``'s parameters as keyword-only, with evaluated annotations where they resolve."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation naming something not importable here: keep the strings
        hints = {}
    parameters = list(inspect.signature(cls).parameters.values())
    return [
        p.replace(kind=p.KEYWORD_ONLY if p.kind is not p.VAR_KEYWORD else p.kind, annotation=hints.get(p.name, p.annotation))
        for p in parameters
        if p.kind is not p.VAR_POSITIONAL
    ]


# --- input sizes -----------------------------------------------------------------------------

#: The ``MIN_INPUT_SIZE`` of the deep BatchNorm nets without bounded activations (DenseNet,
#: PeleeNet, DarkNet53, CSPDarkNet53). At 32x32 their last stage runs on 1x1 maps, so each
#: BatchNorm there sees only the batch's two values per channel; statistics set from such a
#: batch leave many channels nearly constant, and eval-mode rounding differences grow through
#: them layer by layer (to logits of 1e7 in DarkNet53, overflow in DenseNet264, PaddleClas's
#: own models alike). At 64x64 the last maps are 2x2 and the logits stay of order 1.
STABLE_BATCHNORM_SIZE = 64


def native_input_size(variants: Mapping[str, Mapping[str, Any]]) -> Callable[[str], int]:
    """A ``MIN_INPUT_SIZE`` for families whose position embeddings or windows fix the input
    size: each variant's own ``img_size``."""
    return lambda name: variants[name]["img_size"]
