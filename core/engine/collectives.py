"""Collectives over the processes of a data-parallel job (no-ops in a single process)."""
from __future__ import annotations

import copy
from typing import Any, Mapping

import paddle


def gather_outputs(value: Any, world_size: int) -> Any:
    """Concatenate a tensor (or every tensor in a dict of outputs) from all ranks
    along the batch axis, in rank order."""
    if world_size == 1:
        return value
    if isinstance(value, Mapping):
        gathered = copy.copy(value)  # keeps a dict subclass and its attributes
        for key in value:
            gathered[key] = gather_outputs(value[key], world_size)
        return gathered
    parts: list[paddle.Tensor] = []
    paddle.distributed.all_gather(parts, value)
    return paddle.concat(parts, axis=0)


def select_rows(value: Any, rows: paddle.Tensor) -> Any:
    """The rows ``rows`` (int64 indices) of a tensor or of every tensor in a dict of outputs."""
    if isinstance(value, Mapping):
        selected = copy.copy(value)
        for key in value:
            selected[key] = select_rows(value[key], rows)
        return selected
    return paddle.index_select(value, rows, axis=0)


def mean_over_ranks(values: Mapping[str, float], world_size: int) -> dict[str, float]:
    """Average each value over the ranks (keys missing on a rank are averaged over the others)."""
    if world_size == 1:
        return dict(values)
    everyone: list[dict] = []
    paddle.distributed.all_gather_object(everyone, dict(values))
    keys = list(dict.fromkeys(k for rank_values in everyone for k in rank_values))
    return {k: sum(v[k] for v in everyone if k in v) / sum(1 for v in everyone if k in v) for k in keys}


def sum_over_ranks(tensor: paddle.Tensor, world_size: int) -> paddle.Tensor:
    """The element-wise sum of ``tensor`` over the ranks (a copy; ``tensor`` is untouched)."""
    total = tensor.detach().clone()
    if world_size > 1:
        paddle.distributed.all_reduce(total)
    return total
