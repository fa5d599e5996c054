"""RepVGG (Ding et al. 2021, https://arxiv.org/abs/2101.03697), weight-compatible with
PaddleClas 2.6's ``RepVGG_A0`` ... ``RepVGG_B3g4`` and ``RepVGG_D2se``.

Each block trains as three branches (3x3 conv-BN, 1x1 conv-BN, and BN alone where the shape
allows) and can then be re-parameterised into one 3x3 conv with bias, computing the same
function: :meth:`RepVGG.re_parameterize`. PaddleClas does that when it exports a model, and
so does ``corolla export`` (and ``corolla infer``): they predict with the model's
:meth:`RepVGG.inference_model`, the re-parameterised net.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._layers import ConvBN, LeanBatchNorm2D

# --- building blocks -----------------------------------------------------------------------


class SqueezeExcite(nn.Layer):
    """Pooled features -> 1x1 conv (``down``) -> ReLU -> 1x1 conv (``up``) -> sigmoid gate."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.down = nn.Conv2D(channels, squeezed, 1)
        self.up = nn.Conv2D(squeezed, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        gate = self.up(nn.functional.relu(self.down(nn.functional.adaptive_avg_pool2d(x, 1))))
        return x * nn.functional.sigmoid(gate)


def _fold_norm(kernel: paddle.Tensor, norm: nn.BatchNorm2D) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The kernel and bias of ``norm`` applied after a bias-free conv with ``kernel`` (eval statistics)."""
    scale = norm.weight / paddle.sqrt(norm._variance + norm._epsilon)
    return kernel * scale.reshape([-1, 1, 1, 1]), norm.bias - norm._mean * scale


class RepVGGBlock(nn.Layer):
    """Three branches summed: 3x3 conv-BN (``rbr_dense``), 1x1 conv-BN (``rbr_1x1``) and, at
    stride 1 with as many inputs as outputs, BN alone (``rbr_identity``); then
    squeeze-excitation (``se``, with ``use_se``) and ReLU. :meth:`re_parameterize` folds the
    branches into one 3x3 conv with bias (``rbr_reparam``), which ``forward`` then uses."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, groups: int, use_se: bool) -> None:
        super().__init__()
        self.rbr_identity = LeanBatchNorm2D(in_channels) if in_channels == out_channels and stride == 1 else None
        self.rbr_dense = ConvBN(in_channels, out_channels, 3, stride=stride, groups=groups)
        self.rbr_1x1 = ConvBN(in_channels, out_channels, 1, stride=stride, groups=groups)
        self.se = SqueezeExcite(out_channels, out_channels // 16) if use_se else None
        self.conv_shape = (in_channels, out_channels, stride, groups)
        self.is_repped = False

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.is_repped:
            y = self.rbr_reparam(x)
        else:
            y = self.rbr_dense(x) + self.rbr_1x1(x)
            if self.rbr_identity is not None:
                y = y + self.rbr_identity(x)
        if self.se is not None:
            y = self.se(y)
        return nn.functional.relu(y)

    @paddle.no_grad()
    def re_parameterize(self) -> None:
        """Fold the branches, with their BatchNorm running statistics, into ``rbr_reparam``:
        the 1x1 kernel sits at the 3x3 kernel's centre, the identity is a centred 1 per channel."""
        in_channels, out_channels, stride, groups = self.conv_shape
        kernel, bias = _fold_norm(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        kernel_1x1, bias_1x1 = _fold_norm(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        kernel = kernel + nn.functional.pad(kernel_1x1, [1, 1, 1, 1])
        bias = bias + bias_1x1
        if self.rbr_identity is not None:
            per_group = in_channels // groups
            identity = np.zeros((in_channels, per_group, 3, 3), dtype="float32")
            identity[np.arange(in_channels), np.arange(in_channels) % per_group, 1, 1] = 1.0
            kernel_id, bias_id = _fold_norm(paddle.to_tensor(identity, dtype=kernel.dtype), self.rbr_identity)
            kernel, bias = kernel + kernel_id, bias + bias_id
        if not hasattr(self, "rbr_reparam"):
            self.rbr_reparam = nn.Conv2D(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups)
        self.rbr_reparam.weight.set_value(kernel)
        self.rbr_reparam.bias.set_value(bias)
        self.is_repped = True


# --- the model -----------------------------------------------------------------------------

STAGE_CHANNELS = (64, 128, 256, 512)
#: the blocks (numbered from 1 after the stem block) that grouped variants make grouped
GROUPWISE_BLOCKS = frozenset(range(2, 27, 2))


class RepVGG(Backbone):
    """RepVGG: a stride-2 block (``stage0``), four stages of blocks (``stage1`` .. ``stage4``,
    each halving the map at its first block), global pooling and the classifier ``linear``.
    ``num_blocks`` and ``width_multiplier`` give each stage's blocks and width; ``groups``
    the groups of every other block's convs (``g2``/``g4`` names); ``use_se``:
    squeeze-excitation in every block.

    :meth:`re_parameterize` turns the model into plain 3x3 convs with the same outputs (in
    eval mode), as PaddleClas does for export; :meth:`inference_model` returns the model so
    re-parameterised, which is what ``corolla export`` and ``corolla infer`` run.

    ``lr_mult_list`` has 5 values, one per stage (``stage0`` is the stem); ``return_stages``
    picks stages 0-4, at strides 2, 4, 8, 16 and 32.
    """

    def __init__(
        self,
        *,
        num_blocks: Sequence[int],
        width_multiplier: Sequence[float],
        groups: int,
        use_se: bool = False,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        in_channels = min(64, int(64 * width_multiplier[0]))
        self.stage0 = RepVGGBlock(3, in_channels, stride=2, groups=1, use_se=use_se)
        stages = [self.stage0]
        index = 1
        for s, (count, base, width) in enumerate(zip(num_blocks, STAGE_CHANNELS, width_multiplier)):
            out_channels = int(base * width)
            blocks = []
            for b in range(count):
                blocks.append(
                    RepVGGBlock(
                        in_channels, out_channels, stride=2 if b == 0 else 1,
                        groups=groups if index in GROUPWISE_BLOCKS else 1, use_se=use_se,
                    )
                )
                in_channels = out_channels
                index += 1
            stages.append(self.add_sublayer(f"stage{s + 1}", nn.Sequential(*blocks)))
        self.gap = nn.AdaptiveAvgPool2D(1)
        self.linear = nn.Linear(in_channels, self.class_num)
        self.stage_list = stages
        self.finish(lr_groups={f"stage{i}": [stage] for i, stage in enumerate(stages)}, stages=stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for stage in self.stage_list:
            x = stage(x)
        return self.linear(paddle.flatten(self.gap(x), start_axis=1))

    def re_parameterize(self) -> None:
        """Fold every block into one 3x3 conv with bias (from the current weights and
        BatchNorm running statistics); ``forward`` then runs the folded convs."""
        for layer in self.sublayers():
            if isinstance(layer, RepVGGBlock):
                layer.re_parameterize()

    def inference_model(self) -> RepVGG:
        """The model for prediction: this one, re-parameterised (which folds the BatchNorm
        running statistics: the model predicts as in eval mode from then on)."""
        self.re_parameterize()
        return self


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its RepVGG docs) ----------------

_URL = MODEL_ZOO_URL + "{}_pretrained.pdparams"
WEIGHTS = weights_table(
    _URL,
    {
        "RepVGG_A0": 0.7131,
        "RepVGG_A1": 0.7380,
        "RepVGG_A2": 0.7571,
        "RepVGG_B0": 0.7450,
        "RepVGG_B1": 0.7773,
        "RepVGG_B2": 0.7813,
        "RepVGG_B1g2": 0.7732,
        "RepVGG_B1g4": 0.7675,
        "RepVGG_B2g4": 0.7881,
        "RepVGG_B3": 0.8031,
        "RepVGG_B3g4": 0.8005,
    },
) | weights_table(_URL, {"RepVGG_D2se": 0.8339}, input_size=320)

# --- registered names ---------------------------------------------------------------------------

_A = dict(num_blocks=(2, 4, 14, 1))
_B = dict(num_blocks=(4, 6, 16, 1))

VARIANTS = {
    "RepVGG_A0": dict(_A, width_multiplier=(0.75, 0.75, 0.75, 2.5), groups=1),
    "RepVGG_A1": dict(_A, width_multiplier=(1, 1, 1, 2.5), groups=1),
    "RepVGG_A2": dict(_A, width_multiplier=(1.5, 1.5, 1.5, 2.75), groups=1),
    "RepVGG_B0": dict(_B, width_multiplier=(1, 1, 1, 2.5), groups=1),
    "RepVGG_B1": dict(_B, width_multiplier=(2, 2, 2, 4), groups=1),
    "RepVGG_B1g2": dict(_B, width_multiplier=(2, 2, 2, 4), groups=2),
    "RepVGG_B1g4": dict(_B, width_multiplier=(2, 2, 2, 4), groups=4),
    "RepVGG_B2": dict(_B, width_multiplier=(2.5, 2.5, 2.5, 5), groups=1),
    "RepVGG_B2g4": dict(_B, width_multiplier=(2.5, 2.5, 2.5, 5), groups=4),
    "RepVGG_B3": dict(_B, width_multiplier=(3, 3, 3, 5), groups=1),
    "RepVGG_B3g4": dict(_B, width_multiplier=(3, 3, 3, 5), groups=4),
    "RepVGG_D2se": dict(num_blocks=(8, 14, 24, 1), width_multiplier=(2.5, 2.5, 2.5, 5), groups=1, use_se=True),
}

BUILDERS = builders(RepVGG, VARIANTS, WEIGHTS)
