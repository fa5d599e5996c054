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

import math
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
    ``labeled_terms``: the names of the terms that are means over labeled rows only (from
    losses whose ``labeled_only`` is true), known once the loss has run.
    """

    def __init__(self, terms: list[tuple[str, float, LossFn]]) -> None:
        super().__init__()
        self.terms = terms
        self.labeled_terms: set[str] = set()
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
                _check_term(key_path, name, value)
                if name in result:
                    name = f"{name}_{index}"
                result[name] = value * weight
                if getattr(fn, "labeled_only", False):
                    self.labeled_terms.add(name)
        result["loss"] = paddle.add_n(list(result.values()))
        return result

    @property
    def needs_labels(self) -> bool:
        """Whether every loss learns from labeled rows only (an unlabeled image teaches nothing)."""
        return all(getattr(fn, "labeled_only", False) for _, _, fn in self.terms)


def _check_term(key_path: str, name: str, value: Any) -> None:
    """A term must be a scalar tensor (a mean over the batch); a graph tensor of ``to_static``
    is not a ``paddle.Tensor``, so its shape is what is checked (-1: the batch axis)."""
    shape = getattr(value, "shape", None)
    if shape is None or not hasattr(value, "stop_gradient"):
        raise ConfigError(f"{key_path}: term {name!r} is a {type(value).__name__}, expected a scalar paddle Tensor")
    if math.prod(shape) != 1:
        raise ConfigError(f"{key_path}: term {name!r} has shape {list(shape)}, expected a scalar (e.g. the mean over the batch)")


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


def labeled_rows(labels: paddle.Tensor) -> paddle.Tensor:
    """How many rows of ``labels`` have a label (no entry below 0: -1 marks an unlabeled
    sample), as a float32 scalar where the labels are (no wait for the device)."""
    rows = labels.reshape([labels.shape[0], -1])
    return (rows.min(axis=1) >= 0).astype("float32").sum()


class TermMeans:
    """Each loss term's mean over the batches added: weighted by the batch's rows, or, for a
    term over labeled rows only (``labeled_terms``), by its labeled rows."""

    def __init__(self, labeled_terms: set[str]) -> None:
        self.labeled_terms = labeled_terms
        self._sums: dict[str, float] = {}
        self._weights: dict[str, float] = {}

    def add(self, values: Mapping[str, float], batch: float, labeled: float) -> dict[str, float]:
        """Add a batch's terms; return those it has a value of (a term over labeled rows
        has none in a batch without a labeled row)."""
        shown = {}
        for name, value in values.items():
            weight = labeled if name in self.labeled_terms else batch
            self._sums[name] = self._sums.get(name, 0.0) + value * weight
            self._weights[name] = self._weights.get(name, 0.0) + weight
            if weight > 0:
                shown[name] = value
        return shown

    def means(self) -> dict[str, float]:
        return {name: total / self._weights[name] for name, total in self._sums.items() if self._weights[name] > 0}
