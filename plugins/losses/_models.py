"""Which model outputs a distillation loss reads: ``model_names`` or ``model_name_pairs``, and ``key``."""
from __future__ import annotations

from typing import Any, Iterator

import paddle

from corolla.api import pick_output

Tensor = paddle.Tensor


def check_names(value: Any) -> list[str]:
    """``model_names``: a non-empty list of sub-model names."""
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"model_names: expected a non-empty list of model names like [Student], found {value!r}")
    return list(value)


def check_pairs(value: Any) -> list[tuple[str, str]]:
    """``model_name_pairs``: a non-empty list of ``[model, other_model]`` pairs."""
    ok = isinstance(value, (list, tuple)) and value and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(n, str) and n for n in p) for p in value
    )
    if not ok:
        raise ValueError(f"model_name_pairs: expected a non-empty list of pairs like [[Student, Teacher]], found {value!r}")
    return [(a, b) for a, b in value]


class PairLoss:
    """Base of losses between two models' outputs: applies ``term`` to every pair.

    Subclasses implement ``term(first, second, labels) -> Tensor``; each pair gives one
    entry ``{name}_{first}_{second}``, and every entry counts in the combined loss.
    """

    def __init__(self, model_name_pairs: Any, key: str | None, name: str) -> None:
        self.model_name_pairs = check_pairs(model_name_pairs)
        self.key = key
        self.name = name

    def outputs(self, outputs: Any) -> Iterator[tuple[str, Tensor, Tensor]]:
        for first, second in self.model_name_pairs:
            yield (
                f"{self.name}_{first}_{second}",
                pick_output(outputs, model_name=first, key=self.key),
                pick_output(outputs, model_name=second, key=self.key),
            )

    def __call__(self, outputs: Any, labels: Tensor) -> dict[str, Tensor]:
        return {entry: self.term(a, b, labels) for entry, a, b in self.outputs(outputs)}

    def term(self, first: Tensor, second: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError


class PerModelLoss:
    """Base of losses on each listed model's own output against the labels."""

    def __init__(self, model_names: Any, key: str | None, name: str) -> None:
        self.model_names = check_names(model_names)
        self.key = key
        self.name = name

    def __call__(self, outputs: Any, labels: Tensor) -> dict[str, Tensor]:
        return {
            f"{self.name}_{model}": self.term(pick_output(outputs, model_name=model, key=self.key), labels)
            for model in self.model_names
        }

    def term(self, output: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError
