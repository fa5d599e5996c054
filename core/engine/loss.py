"""Build the weighted sum of the losses a ``Loss.Train`` / ``Loss.Eval`` list names.

::

    Loss:
      Train:
        - DistillationGTCELoss: {weight: 1.0, model_names: [Student]}
        - DistillationDMLLoss: {weight: 2.0, model_name_pairs: [[Student, Teacher]]}

Each item's ``weight`` (default 1.0) is taken out by the combiner and always applied, also
when the list has a single item (PaddleClas ignores a lone item's weight and, for a lone
item, counts only its first term; corolla counts every term of every item).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import paddle

from corolla.config.plan import Part
from corolla.plugin.errors import ConfigError
from corolla.plugin.registry import Registry

LossFn = Callable[[Any, Any], Mapping[str, paddle.Tensor]]


class CombinedLoss(paddle.nn.Layer):
    """Weighted losses; ``combined(outputs, labels)`` returns each weighted term and ``"loss"``.

    A term whose name two losses share gets its item index appended (``CELoss_1``).
    Losses that are ``paddle.nn.Layer`` objects become sublayers, so that their
    parameters (if any) reach the optimizer through ``combined.parameters()``.
    """

    def __init__(self, terms: list[tuple[str, float, LossFn]]) -> None:
        super().__init__()
        self.terms = terms
        for index, (_, _, fn) in enumerate(terms):
            if isinstance(fn, paddle.nn.Layer):
                self.add_sublayer(f"loss_{index}", fn)

    def forward(self, outputs: Any, labels: Any) -> dict[str, paddle.Tensor]:
        result: dict[str, paddle.Tensor] = {}
        for index, (key_path, weight, fn) in enumerate(self.terms):
            try:
                values = fn(outputs, labels)
            except ConfigError as exc:
                raise ConfigError(f"{key_path}: {exc}") from None
            except ValueError as exc:  # Paddle's shape errors: paired models of different class counts, say
                raise ConfigError(f"{key_path} cannot be computed on the outputs ({_shapes(outputs)}): "
                                  f"{str(exc).strip().splitlines()[0]}") from exc
            if not isinstance(values, Mapping) or not values:
                raise ConfigError(
                    f"{key_path}: a loss must return a non-empty dict of named tensors, "
                    f"found {type(values).__name__}"
                )
            for name, value in values.items():
                if name == "loss":
                    raise ConfigError(f"{key_path}: a loss may not name a term 'loss' (the combined sum uses it)")
                if name in result:
                    name = f"{name}_{index}"
                result[name] = value * weight
        result["loss"] = paddle.add_n(list(result.values()))
        return result


def _shapes(outputs: Any) -> str:
    """``Teacher [8, 4], Student [8, 102]``: the shape of each model's logits, or of the output."""
    if not isinstance(outputs, Mapping):
        return str(list(getattr(outputs, "shape", [])))
    shown = {name: value.get("logits") if isinstance(value, Mapping) else value for name, value in outputs.items()}
    return ", ".join(f"{name} {list(value.shape)}" for name, value in shown.items() if hasattr(value, "shape"))


def build_loss(parts: Sequence[Part], registry: Registry, key_path: str) -> CombinedLoss:
    """Build the planned losses of ``key_path`` (``Loss.Train``), each with its ``weight``
    (checked by the plan)."""
    if not parts:
        raise ConfigError(f"{key_path}: expected a list of at least one loss")
    terms = []
    for part in parts:
        terms.append((part.key_path, float(part.consumed.get("weight", 1.0)), part.build(registry)))
    return CombinedLoss(terms)
