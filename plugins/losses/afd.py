"""AFDLoss: attention-based feature distillation (Ji et al. 2021), with PaddleClas's parameters.

It reads what the ``AttentionModel`` sub-models return (their ``LinearTransformStudent`` and
``LinearTransformTeacher``): the student's ``bilinear_key`` and ``value``, the teacher's
``query`` and ``value``.
"""
from __future__ import annotations

import math
from typing import Any

import paddle
from paddle import nn

from corolla.api import ConfigError, pick_output

Tensor = paddle.Tensor


def _check_shapes(shapes: Any, name: str) -> list[list[int]]:
    ok = isinstance(shapes, (list, tuple)) and shapes and all(
        isinstance(s, (list, tuple)) and len(s) == 3 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in s)
        for s in shapes
    )
    if not ok:
        raise ValueError(f"{name}: expected a non-empty list of [channels, height, width], found {shapes!r}")
    return [list(s) for s in shapes]


def _check_names(value: Any, name: str, count: int) -> list[str]:
    if not isinstance(value, (list, tuple)) or len(value) != count or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name}: expected {count} output names, found {value!r}")
    return list(value)


class Positions(nn.Layer):
    """Learned position embeddings of the teacher's and the student's maps, under PaddleClas's
    parameter names (``attention.p_t``, ``attention.p_s``)."""

    def __init__(self, teachers: int, students: int, dim: int) -> None:
        super().__init__()
        self.p_t = self.create_parameter([teachers, dim], default_initializer=nn.initializer.XavierNormal())
        self.p_s = self.create_parameter([students, dim], default_initializer=nn.initializer.XavierNormal())


class AFDLoss(nn.Layer):
    """Attention-based feature distillation between ``model_name_pair`` ``[student, teacher]``.

    With ``k = bilinear_key`` ``[N, S, T, d]``, ``q = query`` ``[N, T, d]`` (``d = qk_dim``)
    and learned position embeddings ``p_t`` ``[T, d]``, ``p_s`` ``[S, d]``, each teacher map
    ``j`` attends over the student's maps ``i``::

        a_nji = softmax_i((k_nij . q_nj + p_t_j . p_s_i) / sqrt(d))
        loss  = sum_j mean_n sum_i a_nji * mean_hw (v^s_{u(j)} ni - v^t_j n)^2

    where ``v^t_j`` is the teacher's value of map ``j`` and ``v^s_{u(j)}`` the student's values
    pooled to map ``j``'s size (``u`` numbers the distinct ``t_shapes``). Every row counts,
    labeled or not.
    """

    def __init__(self, model_name_pair: Any = ("Student", "Teacher"), student_keys: Any = ("bilinear_key", "value"),
                 teacher_keys: Any = ("query", "value"), s_shapes: Any = None, t_shapes: Any = None,
                 qk_dim: int = 128, name: str = "loss_afd") -> None:
        super().__init__()
        self.model_name_pair = _check_names(model_name_pair, "model_name_pair", 2)
        self.student_keys = _check_names(student_keys, "student_keys", 2)
        self.teacher_keys = _check_names(teacher_keys, "teacher_keys", 2)
        s_shapes, t_shapes = _check_shapes(s_shapes, "s_shapes"), _check_shapes(t_shapes, "t_shapes")
        if isinstance(qk_dim, bool) or not isinstance(qk_dim, int) or qk_dim < 1:
            raise ValueError(f"qk_dim: expected a positive integer, found {qk_dim!r}")
        self.qk_dim = qk_dim
        distinct = []
        for shape in t_shapes:
            if shape not in distinct:
                distinct.append(shape)
        self.distinct_of = [distinct.index(shape) for shape in t_shapes]
        self.name = name
        self.attention = Positions(len(t_shapes), len(s_shapes), qk_dim)

    def forward(self, outputs: Any, labels: Tensor) -> dict[str, Tensor]:
        student, teacher = self.model_name_pair
        key, s_values = (pick_output(outputs, model_name=student, key=k) for k in self.student_keys)
        query, t_values = (pick_output(outputs, model_name=teacher, key=k) for k in self.teacher_keys)
        if len(t_values) != len(self.distinct_of) or list(key.shape[1:3]) != [self.attention.p_s.shape[0], len(self.distinct_of)]:
            raise ConfigError(f"AFDLoss: the models give {len(t_values)} teacher values and student keys {list(key.shape)}, "
                              f"but s_shapes / t_shapes describe {self.attention.p_s.shape[0]} student and "
                              f"{len(self.distinct_of)} teacher maps")
        position = paddle.matmul(self.attention.p_t, self.attention.p_s, transpose_y=True)  # [T, S]
        logits = (key.transpose([0, 2, 1, 3]) * query.unsqueeze(2)).sum(axis=-1) + position  # [N, T, S]
        attention = paddle.nn.functional.softmax(logits / math.sqrt(self.qk_dim), axis=2)
        terms = []
        for j, (u, t_value) in enumerate(zip(self.distinct_of, t_values)):
            gap = (s_values[u] - t_value.unsqueeze(1)).pow(2).mean(axis=2)  # [N, S]
            terms.append((gap * attention[:, j]).sum(axis=1).mean())
        return {self.name: paddle.add_n(terms)}
