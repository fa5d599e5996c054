"""CSPDarkNet-53 (Wang et al. 2019, https://arxiv.org/abs/1911.11929): DarkNet-53 with
cross-stage partial connections, weight-compatible with PaddleClas 2.6's ``CSPDarkNet53``
(model_zoo/cspnet.py). Trained at 256x256."""
from __future__ import annotations

from typing import Any, NamedTuple

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import STABLE_BATCHNORM_SIZE, Backbone, builders
from corolla.plugins.backbones._layers import ConvBN

# --- building blocks -----------------------------------------------------------------------

LEAKY_SLOPE = 0.01  # Paddle's nn.LeakyReLU default, which PaddleClas uses here


class ConvBNLeaky(ConvBN):
    """Bias-free conv, BN (``conv``, ``bn``), leaky ReLU."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.leaky_relu(super().forward(x), LEAKY_SLOPE)


class DarkBlock(nn.Layer):
    """1x1 conv to ``mid_channels``, 3x3 conv back (``conv1``, ``conv2``), plus the input."""

    def __init__(self, channels: int, mid_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNLeaky(channels, mid_channels, 1)
        self.conv2 = ConvBNLeaky(mid_channels, channels, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.conv2(self.conv1(x))


class StageSpec(NamedTuple):
    """One cross stage: output channels, dark blocks, and the widths as ratios of the output:
    after the expanding 1x1 conv (``expand``), of the blocks (``block``) and inside them
    (``bottleneck``, of the block width)."""

    channels: int
    depth: int
    expand: float
    bottleneck: float
    block: float


class CrossStage(nn.Layer):
    """3x3/2 conv ``conv_down``, 1x1 conv ``conv_exp``, whose output splits in two halves: the
    second goes through dark blocks ``blocks`` and a 1x1 conv ``conv_transition_b``, is
    concatenated back to the first, and a 1x1 conv ``conv_transition`` fuses them."""

    def __init__(self, in_channels: int, spec: StageSpec) -> None:
        super().__init__()
        expanded = int(round(spec.channels * spec.expand))
        block_channels = int(round(spec.channels * spec.block))
        self.conv_down = ConvBNLeaky(in_channels, spec.channels, 3, stride=2)
        self.conv_exp = ConvBNLeaky(spec.channels, expanded, 1)
        self.blocks = nn.Sequential(
            *(DarkBlock(block_channels, int(round(block_channels * spec.bottleneck))) for _ in range(spec.depth))
        )
        self.conv_transition_b = ConvBNLeaky(block_channels, expanded // 2, 1)
        self.conv_transition = ConvBNLeaky(expanded, spec.channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        kept, processed = paddle.split(self.conv_exp(self.conv_down(x)), 2, axis=1)
        processed = self.conv_transition_b(self.blocks(processed))
        return self.conv_transition(paddle.concat([kept, processed], axis=1))


# --- the model -----------------------------------------------------------------------------

STEM_CHANNELS = 32
STAGES = (
    StageSpec(64, 1, expand=2.0, bottleneck=0.5, block=1.0),
    StageSpec(128, 2, expand=1.0, bottleneck=1.0, block=0.5),
    StageSpec(256, 8, expand=1.0, bottleneck=1.0, block=0.5),
    StageSpec(512, 8, expand=1.0, bottleneck=1.0, block=0.5),
    StageSpec(1024, 4, expand=1.0, bottleneck=1.0, block=0.5),
)


class CSPDarkNet(Backbone):
    """CSPDarkNet-53: the stem ``stem.conv1`` (3x3 conv, 32 channels, stride 1), five cross
    stages ``stages.0..4`` (each halving the resolution), global pooling and the classifier
    ``fc``. Leaky ReLU throughout.

    ``lr_mult_list`` has 6 values: the stem, then each stage; ``return_stages`` picks
    stages 0-4 (strides 2 to 32).
    """

    def __init__(self, **contract: Any) -> None:
        super().__init__(**contract)
        self.stem = nn.Sequential(("conv1", ConvBNLeaky(3, STEM_CHANNELS, 3)))
        stages, channels = [], STEM_CHANNELS
        for spec in STAGES:
            stages.append(CrossStage(channels, spec))
            channels = spec.channels
        self.stages = nn.LayerList(stages)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(channels, self.class_num)
        groups = {"stem": [self.stem], **{f"stage{i}": [stage] for i, stage in enumerate(stages)}}
        self.finish(lr_groups=groups, stages=stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(paddle.flatten(self.pool(x), start_axis=1))


MIN_INPUT_SIZE = STABLE_BATCHNORM_SIZE  # see there why not 32

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -------------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"CSPDarkNet53": 0.7725}, input_size=256)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "CSPDarkNet53": dict(),
}

BUILDERS = builders(CSPDarkNet, VARIANTS, WEIGHTS)
