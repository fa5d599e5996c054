"""Feature distillation with learned modules: DistillationPairLoss around MGD or PEFD.

Both base losses hold parameters (a generator, projectors) that train with the student: the
loss is a ``paddle.nn.Layer``, so its parameters reach the optimizer and the checkpoints.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import paddle
import paddle.nn.functional as F
from paddle import nn

from corolla.api import ConfigError, pick_output
from corolla.plugins.losses._models import check_pairs

Tensor = paddle.Tensor


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, found {value!r}")
    return value


def _kaiming_fan_out(channels_out: int, kernel: int) -> paddle.ParamAttr:
    """He-normal initialisation scaled by the fan-out (``out * k * k``), for ReLU layers."""
    return paddle.ParamAttr(initializer=nn.initializer.KaimingNormal(fan_in=channels_out * kernel * kernel))


class MGDLoss(nn.Layer):
    """Masked generative distillation (Yang et al. 2022) of a student feature map ``s`` into
    the teacher's ``t`` (``[N, C, H, W]``, equal ``H, W``)::

        m    = 0 for each (sample, channel) with probability lambda_mgd, else 1
        loss = alpha_mgd * mean((G(m * A(s)) - t)^2)

    ``A`` is a 1x1 convolution to the teacher's channels (none when the counts match) and
    ``G`` two 3x3 convolutions with a ReLU between, both learned.
    """

    def __init__(self, student_channels: int, teacher_channels: int, alpha_mgd: float = 1.756,
                 lambda_mgd: float = 0.15) -> None:
        super().__init__()
        student_channels = _positive_int(student_channels, "student_channels")
        teacher_channels = _positive_int(teacher_channels, "teacher_channels")
        if isinstance(lambda_mgd, bool) or not isinstance(lambda_mgd, (int, float)) or not 0 <= lambda_mgd <= 1:
            raise ValueError(f"lambda_mgd: expected a masking probability in [0, 1], found {lambda_mgd!r}")
        self.alpha_mgd = float(alpha_mgd)
        self.lambda_mgd = float(lambda_mgd)
        self.align = (nn.Conv2D(student_channels, teacher_channels, 1, weight_attr=_kaiming_fan_out(teacher_channels, 1))
                      if student_channels != teacher_channels else None)
        self.generation = nn.Sequential(
            nn.Conv2D(teacher_channels, teacher_channels, 3, padding=1, weight_attr=_kaiming_fan_out(teacher_channels, 3)),
            nn.ReLU(),
            nn.Conv2D(teacher_channels, teacher_channels, 3, padding=1, weight_attr=_kaiming_fan_out(teacher_channels, 3)),
        )

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        if list(student.shape[2:]) != list(teacher.shape[2:]):
            raise ConfigError(f"MGDLoss needs feature maps of equal height and width, found {list(student.shape)} "
                              f"and {list(teacher.shape)}; pick other s_key / t_key layers")
        if self.align is not None:
            student = self.align(student)
        keep = (paddle.rand([teacher.shape[0], teacher.shape[1], 1, 1]) >= self.lambda_mgd).astype(student.dtype)
        return F.mse_loss(self.generation(student * keep), teacher) * self.alpha_mgd


class PEFDLoss(nn.Layer):
    """Projector-ensemble feature distillation (Chen et al. 2022) of a student feature map
    ``s`` into the teacher's ``t``::

        f    = flatten(mean_k relu(P_k(s)))       # P_k: learned 1x1 convolutions to t's channels
        loss = mean_i (1 - cos(f_i, flatten(t_i)))
    """

    def __init__(self, student_channel: int, teacher_channel: int, num_projectors: int = 3) -> None:
        super().__init__()
        student_channel = _positive_int(student_channel, "student_channel")
        teacher_channel = _positive_int(teacher_channel, "teacher_channel")
        self.projectors = nn.LayerList([nn.Conv2D(student_channel, teacher_channel, 1)
                                        for _ in range(_positive_int(num_projectors, "num_projectors"))])

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        if list(student.shape[2:]) != list(teacher.shape[2:]):
            raise ConfigError(f"PEFDLoss needs feature maps of equal height and width, found {list(student.shape)} "
                              f"and {list(teacher.shape)}")
        projected = paddle.add_n([F.relu(projector(student)) for projector in self.projectors]) / len(self.projectors)
        return (1.0 - F.cosine_similarity(projected.flatten(1), teacher.flatten(1), axis=1)).mean()


#: the losses DistillationPairLoss wraps, by PaddleClas name
BASE_LOSSES: dict[str, Callable[..., nn.Layer]] = {"MGDLoss": MGDLoss, "PEFDLoss": PEFDLoss}


class DistillationPairLoss(nn.Layer):
    """A feature loss between each pair ``(s, t)`` of ``model_name_pairs``: ``base_loss_name``
    (MGDLoss or PEFDLoss; its arguments are the item's other keys) applied to the student's
    output ``s_key`` and the teacher's ``t_key`` (layer names given to the sub-models'
    ``return_patterns``, such as ``blocks[7]``). One entry ``{name}_{s}_{t}`` per pair, each
    with its own learned base loss.
    """

    def __init__(self, base_loss_name: str, model_name_pairs: Any = (("Student", "Teacher"),),
                 s_key: str | None = None, t_key: str | None = None, name: str = "loss_pair", **kwargs: Any) -> None:
        super().__init__()
        if base_loss_name not in BASE_LOSSES:
            raise ValueError(f"base_loss_name: expected one of {', '.join(BASE_LOSSES)}, found {base_loss_name!r}")
        base = BASE_LOSSES[base_loss_name]
        accepted = [p for p in inspect.signature(base).parameters]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an argument of {base_loss_name}; it takes {', '.join(accepted)}")
        self.model_name_pairs = check_pairs(model_name_pairs)
        self.s_key, self.t_key, self.name = s_key, t_key, name
        self.losses = nn.LayerList([base(**kwargs) for _ in self.model_name_pairs])

    def forward(self, outputs: Any, labels: Tensor) -> dict[str, Tensor]:
        return {
            f"{self.name}_{first}_{second}": loss(pick_output(outputs, model_name=first, key=self.s_key),
                                                  pick_output(outputs, model_name=second, key=self.t_key))
            for (first, second), loss in zip(self.model_name_pairs, self.losses)
        }
