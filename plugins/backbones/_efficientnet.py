"""What the EfficientNet families share: TensorFlow's "SAME" padding fixed for a nominal
input size, drop-connect, and the EfficientNet (Tan & Le 2019, https://arxiv.org/abs/1905.11946)
of PaddleClas 2.6's ``model_zoo/efficientnet.py``, which TinyNet re-scales.

Parameter names follow PaddleClas, nesting and all
(``_ef._blocks.1.._dcn._conv._conv._conv.weight``), so that its ``.pdparams`` load unchanged.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import paddle
from paddle import nn

from corolla.api import ComponentArgumentError
from corolla.plugins.backbones._base import Backbone
from corolla.plugins.backbones._checks import check_choice
from corolla.plugins.backbones._layers import LeanBatchNorm2D, make_divisible
from corolla.plugins.backbones._regularize import drop_path

PADDING_TYPES = ("SAME", "DYNAMIC")


def check_padding_type(name: str, padding_type: str) -> None:
    """``padding_type`` must be one of :data:`PADDING_TYPES`."""
    check_choice(
        name, "padding_type", padding_type, PADDING_TYPES,
        why="PaddleClas's VALID leaves the convolutions unpadded, which no residual block survives",
    )

# --- padding, drop-connect -----------------------------------------------------------------


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, bool]:
    """TensorFlow's "SAME" padding of a convolution on ``size`` pixels, PaddleClas's way:
    ``(padding on every side, whether to crop the first output row and column)``.

    TensorFlow pads ``kernel - stride`` pixels in all (``kernel - size % stride`` where the
    stride does not divide the size), the odd one at the end. Where that is uneven, PaddleClas
    pads both sides ``before + stride`` and crops: at any input size the same outputs as
    padding ``before`` in front and ``before + stride`` behind, and, unlike that asymmetric
    padding, the same floats as PaddleClas's, which matters in deep randomly initialised nets.
    """
    total = max(kernel_size - (stride if size % stride == 0 else size % stride), 0)
    before, after = total // 2, total - total // 2
    return (before, False) if before == after else (before + stride, True)


def drop_connect(x: paddle.Tensor, rate: float, training: bool) -> paddle.Tensor:
    """EfficientNet's stochastic depth: :func:`~._regularize.drop_path` with the random mask
    drawn in Paddle's default dtype whatever ``x``'s, as PaddleClas's EfficientNets draw it."""
    return drop_path(x, rate, training, mask_dtype=paddle.get_default_dtype())


class PaddedConv(nn.Layer):
    """A convolution kept as ``_conv`` (PaddleClas's ``Conv2ds``), padded "SAME" for an input
    of ``size`` pixels (:func:`same_padding`) or "DYNAMIC": ``(stride - 1 + kernel - 1) // 2``
    on every side."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        padding_type: str,
        size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if padding_type == "SAME":
            padding, self.crop = same_padding(size, kernel_size, stride)
        else:
            padding, self.crop = (stride - 1 + kernel_size - 1) // 2, False
        self._conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups,
            bias_attr=None if bias else False,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._conv(x)
        return x[:, :, 1:, 1:] if self.crop else x


# --- EfficientNet's building blocks --------------------------------------------------------


class ConvNorm(nn.Layer):
    """:class:`PaddedConv` (``_conv``), BatchNorm (``_bn``), then swish when ``swish``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, momentum: float, epsilon: float,
        swish: bool = False, **conv: Any,
    ) -> None:
        super().__init__()
        self._conv = PaddedConv(in_channels, out_channels, kernel_size, **conv)
        self._bn = LeanBatchNorm2D(out_channels, momentum=momentum, epsilon=epsilon)
        self.swish = swish

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._bn(self._conv(x))
        return nn.functional.swish(x) if self.swish else x


class Nest(nn.Layer):
    """One layer kept as ``_conv``: a level of PaddleClas's parameter names with no maths of its own."""

    def __init__(self, layer: nn.Layer) -> None:
        super().__init__()
        self._conv = layer

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._conv(x)


class SqueezeExcite(nn.Layer):
    """Pooled features -> 1x1 conv (``_conv1``) -> swish -> 1x1 conv (``_conv2``) -> sigmoid gate."""

    def __init__(self, channels: int, squeezed: int, padding_type: str) -> None:
        super().__init__()
        self._conv1 = PaddedConv(channels, squeezed, 1, padding_type=padding_type, size=1, bias=True)
        self._conv2 = PaddedConv(squeezed, channels, 1, padding_type=padding_type, size=1, bias=True)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self._conv1(nn.functional.adaptive_avg_pool2d(x, 1))
        return x * nn.functional.sigmoid(self._conv2(nn.functional.swish(gate)))


class MBConvBlock(nn.Layer):
    """Inverted bottleneck: 1x1 expansion (``_ecn``, when ``expand_ratio`` > 1) and swish,
    depthwise conv (``_dcn``) and swish, squeeze-excitation (``_se``, when ``squeezed``), 1x1
    projection (``_pcn``); where the shape allows, the input is added back, after drop-connect
    at ``drop_rate``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        squeezed: int | None,
        drop_rate: float,
        **conv: Any,
    ) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        self._ecn = Nest(ConvNorm(in_channels, mid, 1, **conv)) if expand_ratio != 1 else None
        self._dcn = Nest(ConvNorm(mid, mid, kernel_size, stride=stride, groups=mid, **conv))
        self._se = SqueezeExcite(mid, squeezed, conv["padding_type"]) if squeezed else None
        self._pcn = Nest(ConvNorm(mid, out_channels, 1, **conv))
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_rate = drop_rate

    def forward(self, inputs: paddle.Tensor) -> paddle.Tensor:
        x = inputs if self._ecn is None else nn.functional.swish(self._ecn(inputs))
        x = nn.functional.swish(self._dcn(x))
        if self._se is not None:
            x = self._se(x)
        x = self._pcn(x)
        if self.residual:
            x = drop_connect(x, self.drop_rate, self.training) + inputs
        return x


class Features(nn.Layer):
    """The stem (``_conv_stem``) and the blocks, each under its PaddleClas name."""

    def __init__(self, stem: nn.Layer, blocks: Mapping[str, nn.Layer]) -> None:
        super().__init__()
        self._conv_stem = stem
        self.blocks = [self.add_sublayer(name, block) for name, block in blocks.items()]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = nn.functional.swish(self._conv_stem(x))
        for block in self.blocks:
            x = block(x)
        return x


# --- the model ----------------------------------------------------------------------------

#: EfficientNet-B0's block groups as (repeats, kernel, stride, expand ratio, out channels),
#: each group's first block taking the previous group's channels (the stem's 32 for the first);
#: every block has squeeze-excitation of ratio SE_RATIO
BLOCK_GROUPS = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
SE_RATIO = 0.25
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclasses.dataclass(frozen=True)
class Scaling:
    """What PaddleClas calls the global parameters, each of which ``override_params`` may set."""

    width_coefficient: float
    depth_coefficient: float
    dropout_rate: float
    drop_connect_rate: float = 0.2
    batch_norm_momentum: float = 0.99
    batch_norm_epsilon: float = 1e-3
    depth_divisor: int = 8
    #: how a scaled number of blocks is made whole: "ceil" or "round" (half to even)
    depth_trunc: str = "ceil"
    min_depth: int | None = None

    def channels(self, base: int) -> int:
        """``base`` channels times the width, in multiples of ``depth_divisor`` (never 10% fewer)."""
        return int(make_divisible(base * self.width_coefficient, self.depth_divisor, self.min_depth))

    def repeats(self, base: int) -> int:
        """``base`` blocks times the depth, made whole as ``depth_trunc`` says."""
        scaled = base * self.depth_coefficient
        return max(1, round(scaled)) if self.depth_trunc == "round" else int(math.ceil(scaled))


class EfficientNet(Backbone):
    """EfficientNet: a stride-2 stem (``_ef._conv_stem``), seven groups of inverted-bottleneck
    blocks (``_ef._blocks.<i>.`` opens a group, ``_ef.block.<i>.`` repeats it), a 1x1 head conv
    (``_conv``), global pooling, dropout and the classifier ``_fc``.

    ``width_coefficient``/``depth_coefficient`` scale B0's channels and blocks; ``resolution``
    is the input size "SAME" padding is worked out for (other sizes run with that padding, as
    in PaddleClas). ``padding_type``: "SAME" (TensorFlow's) or "DYNAMIC" (symmetric);
    ``use_se``: squeeze-excitation in every block; ``fix_stem``: a 32-channel stem at any width;
    ``num_features``: the head's channels (default 1280 times the width); ``override_params``:
    PaddleClas's global parameters to change (:class:`Scaling`'s fields, e.g. ``depth_trunc``,
    ``drop_connect_rate``, ``batch_norm_momentum``). In training each residual block drops its
    branch at a rate rising linearly from 0 to ``drop_connect_rate`` over the blocks.

    ``lr_mult_list`` has 6 values: the stem, then each stage; ``return_stages`` picks stages 0-4,
    the blocks at strides 2, 4, 8, 16 and 32.
    """

    def __init__(
        self,
        *,
        width_coefficient: float,
        depth_coefficient: float,
        resolution: int,
        dropout_rate: float,
        padding_type: str = "SAME",
        use_se: bool = True,
        fix_stem: bool = False,
        num_features: int | None = None,
        override_params: Mapping[str, Any] | None = None,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        check_padding_type(name, padding_type)
        scaling = _scaling(
            name, Scaling(width_coefficient, depth_coefficient, dropout_rate), override_params or {}
        )
        conv = dict(
            padding_type=padding_type, momentum=scaling.batch_norm_momentum, epsilon=scaling.batch_norm_epsilon
        )
        size = resolution
        in_channels = STEM_CHANNELS if fix_stem else scaling.channels(STEM_CHANNELS)
        stem = Nest(ConvNorm(3, in_channels, 3, stride=2, size=size, **conv))
        size = math.ceil(size / 2)

        groups = [(scaling.repeats(n), k, s, e, scaling.channels(c)) for n, k, s, e, c in BLOCK_GROUPS]
        total = sum(group[0] for group in groups)
        blocks: dict[str, nn.Layer] = {}
        stages: list[list[nn.Layer]] = []
        for g, (repeats, kernel, stride, expand, out_channels) in enumerate(groups):
            if g == 0 or stride > 1:
                stages.append([])
            for r in range(repeats):
                index = len(blocks)
                block = MBConvBlock(
                    in_channels, out_channels, kernel_size=kernel, stride=stride if r == 0 else 1,
                    expand_ratio=expand, squeezed=max(1, int(in_channels * SE_RATIO)) if use_se else None,
                    size=size, drop_rate=scaling.drop_connect_rate * index / total, **conv,
                )
                blocks[f"_blocks.{index}." if r == 0 else f"block.{index}."] = block
                stages[-1].append(block)
                in_channels = out_channels
            size = math.ceil(size / stride)
        self._ef = Features(stem, blocks)

        features = num_features or scaling.channels(HEAD_CHANNELS)
        self._conv = ConvNorm(in_channels, features, 1, size=size, swish=True, **conv)
        self._pool = nn.AdaptiveAvgPool2D(1)
        self._drop = nn.Dropout(p=scaling.dropout_rate) if scaling.dropout_rate else None
        self._fc = nn.Linear(features, self.class_num)
        self._init_weights()
        self.finish(
            lr_groups={"stem": [stem], **{f"stage{i}": stage for i, stage in enumerate(stages)}},
            stages=[stage[-1] for stage in stages],
        )

    def _init_weights(self) -> None:
        """Paddle's default initialisation, which PaddleClas keeps for EfficientNet."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._pool(self._conv(self._ef(x)))
        if self._drop is not None:
            x = self._drop(x)
        return self._fc(paddle.flatten(x, start_axis=1))


def _scaling(name: str, scaling: Scaling, overrides: Mapping[str, Any]) -> Scaling:
    """``scaling`` with PaddleClas's ``override_params`` applied, each checked."""
    fields = {field.name for field in dataclasses.fields(Scaling)}
    if not isinstance(overrides, Mapping) or set(overrides) - fields:
        unknown = sorted(set(overrides) - fields) if isinstance(overrides, Mapping) else overrides
        raise ComponentArgumentError(
            f"{name}: override_params takes a mapping of {', '.join(sorted(fields))}; got {unknown!r}"
        )
    scaling = dataclasses.replace(scaling, **overrides)
    numbers = {
        field: value for field, value in dataclasses.asdict(scaling).items()
        if field not in ("depth_trunc", "min_depth")
    }
    for field, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ComponentArgumentError(f"{name}: override_params.{field} must be a non-negative number; got {value!r}")
    if scaling.depth_trunc not in ("ceil", "round"):
        raise ComponentArgumentError(
            f"{name}: override_params.depth_trunc must be 'ceil' or 'round'; got {scaling.depth_trunc!r}"
        )
    return scaling
