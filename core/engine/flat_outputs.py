"""A model's outputs as a flat list of tensors and back: what a traced graph returns, and
whether it returns what the model does."""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import paddle

from corolla.plugin.outputs import ModelOutputs


class FlatOutputs(paddle.nn.Layer):
    """The model with its outputs as one list: the tensors at ``paths`` in its (nested) dicts."""

    def __init__(self, net: paddle.nn.Layer, paths: list[tuple[str, ...]]) -> None:
        super().__init__()
        self.net = net
        self.paths = paths

    def forward(self, x: paddle.Tensor) -> list[paddle.Tensor]:
        out = self.net(x)
        return [_at(out, path) for path in self.paths]


def disagreement(expected: list[tuple[tuple[str, ...], paddle.Tensor]], got: list[np.ndarray],
                 tolerance: float) -> str | None:
    """Why the traced model's outputs ``got`` are not dygraph's ``expected`` (:func:`leaves`) within
    ``tolerance`` of their largest value; None when they agree."""
    if len(got) != len(expected):
        return f"the traced model gave {len(got)} outputs, dygraph {len(expected)}"
    for (path, tensor), value in zip(expected, got):
        want = tensor.numpy()
        scale = max(float(np.abs(want).max()), 1e-6)
        gap = float(np.abs(value - want).max()) if value.shape == want.shape else float("inf")
        if not gap <= tolerance * scale:
            return (f"the traced model's output {'.'.join(path) or 'logits'} differs from dygraph's by "
                    f"up to {gap:.3g} (largest value {scale:.3g})")
    return None


def leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """The leaves of ``node``'s nested dicts, with their key paths, in order."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    else:
        yield path, node


def _at(node: Any, path: Sequence[str]) -> Any:
    for key in path:
        node = node[key]
    return node


def rebuild(template: Any, values: Iterator[paddle.Tensor]) -> Any:
    """``template``'s structure (dicts, :class:`ModelOutputs`) with ``values`` at its leaves, in order."""
    if isinstance(template, ModelOutputs):
        return ModelOutputs({k: rebuild(v, values) for k, v in template.items()}, primary=template.primary)
    if isinstance(template, Mapping):
        return {k: rebuild(v, values) for k, v in template.items()}
    return next(values)
