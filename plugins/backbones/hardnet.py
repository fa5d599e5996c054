"""HarDNet (Chao et al. 2019, https://arxiv.org/abs/1909.00948): harmonic densely connected
networks with low memory traffic, weight-compatible with PaddleClas 2.6's ``HarDNet39_ds``,
``HarDNet68_ds``, ``HarDNet68`` and ``HarDNet85`` (model_zoo/hardnet.py)."""
from __future__ import annotations

from typing import Any, NamedTuple

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._layers import LeanBatchNorm2D

# --- building blocks -----------------------------------------------------------------------


class ConvBNReLU6(nn.Layer):
    """Bias-free conv, BN, ReLU6 (``conv``, ``norm``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias_attr=False
        )
        self.norm = LeanBatchNorm2D(out_channels)
        self.relu = nn.ReLU6()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.relu(self.norm(self.conv(x)))


class DepthwiseBN(nn.Layer):
    """3x3 depthwise conv and BN, no activation (``dwconv``, ``norm``)."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.dwconv = nn.Conv2D(channels, channels, 3, stride=stride, padding=1, groups=channels, bias_attr=False)
        self.norm = LeanBatchNorm2D(channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.dwconv(x))


class PointwiseDepthwise(nn.Layer):
    """The depthwise-separable ("_ds") layer: 1x1 conv-BN-ReLU6 (``layer1``), then a 3x3
    depthwise conv-BN (``layer2``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.layer1 = ConvBNReLU6(in_channels, out_channels, 1)
        self.layer2 = DepthwiseBN(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.layer2(self.layer1(x))


def harmonic_links(layer: int) -> list[int]:
    """The earlier layers that layer ``layer`` (1-based; 0 is the block input) reads:
    ``layer - 2**i`` for every power of two ``2**i`` dividing ``layer``."""
    return [layer - 2**i for i in range(layer.bit_length()) if layer % 2**i == 0]


def harmonic_width(layer: int, growth_rate: int, multiplier: float) -> int:
    """Output channels of ``layer``: the growth rate times ``multiplier`` once per link
    beyond the first, rounded to an even number."""
    width = float(growth_rate)
    for _ in harmonic_links(layer)[1:]:
        width *= multiplier
    return int(width + 1) // 2 * 2


class HarmonicBlock(nn.Layer):
    """A harmonic dense block: layer ``k`` reads the concatenated outputs of
    :func:`harmonic_links` ``(k)``; the block outputs the odd layers and the last one."""

    def __init__(self, in_channels: int, growth_rate: int, multiplier: float, depth: int, depthwise: bool) -> None:
        super().__init__()
        widths = [in_channels] + [harmonic_width(k, growth_rate, multiplier) for k in range(1, depth + 1)]
        self.links = [harmonic_links(k) for k in range(1, depth + 1)]
        unit = PointwiseDepthwise if depthwise else ConvBNReLU6
        self.layers = nn.LayerList(
            [unit(sum(widths[i] for i in links), widths[k + 1]) for k, links in enumerate(self.links)]
        )
        self.kept = [k for k in range(1, depth + 1) if k % 2 == 1 or k == depth]
        self.out_channels = sum(widths[k] for k in self.kept)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        outputs = [x]
        for layer, links in zip(self.layers, self.links):
            inputs = [outputs[i] for i in links]
            outputs.append(layer(inputs[0] if len(inputs) == 1 else paddle.concat(inputs, axis=1)))
        return paddle.concat([outputs[k] for k in self.kept], axis=1)


# --- the model -----------------------------------------------------------------------------


class Architecture(NamedTuple):
    """One HarDNet depth: stem widths, per-block growth rate, depth, 1x1 transition width and
    whether a stride-2 downsampling follows, the growth multiplier and the classifier dropout."""

    stem: tuple[int, int]
    growth: tuple[int, ...]
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    downsample: tuple[bool, ...]
    multiplier: float
    dropout: float


ARCHITECTURES = {
    39: Architecture(
        (24, 48), (16, 20, 64, 160), (4, 16, 8, 4), (96, 320, 640, 1024), (True, True, True, False), 1.6, 0.1
    ),
    68: Architecture(
        (32, 64), (14, 16, 20, 40, 160), (8, 16, 16, 16, 4), (128, 256, 320, 640, 1024),
        (True, False, True, True, False), 1.7, 0.1,
    ),
    85: Architecture(
        (48, 96), (24, 24, 28, 36, 48, 256), (8, 16, 16, 16, 16, 4), (192, 256, 320, 480, 720, 1280),
        (True, False, True, False, True, False), 1.7, 0.2,
    ),
}
#: the classifier dropout of the depthwise-separable variants
DS_DROPOUT = 0.05


class HarDNet(Backbone):
    """HarDNet: everything in one list ``base``: a 3x3/2 conv and a second conv (3x3, or 1x1
    for "_ds"), a downsampling (3x3/2 max pooling, or a depthwise 3x3/2 conv for "_ds"), then
    per block a harmonic block, a 1x1 transition conv and, where the resolution halves, a
    downsampling (2x2 max pooling, or depthwise); last the head (pooling, dropout, ``Linear``).

    Fixed per name: ``depth`` (39, 68 or 85) and ``depthwise`` (the "_ds" variants, with
    depthwise-separable layers). ``lr_mult_list`` has 5 values: the stem, then each stage
    (the layers up to the end of each resolution); ``return_stages`` picks stages 0-3 (the
    transition conv at strides 4, 8, 16, 32).
    """

    def __init__(self, *, depth: int, depthwise: bool, **contract: Any) -> None:
        super().__init__(**contract)
        arch = ARCHITECTURES[depth]
        stem, second = arch.stem
        layers: list[nn.Layer] = [ConvBNReLU6(3, stem, 3, stride=2), ConvBNReLU6(stem, second, 1 if depthwise else 3)]
        layers.append(DepthwiseBN(second, stride=2) if depthwise else nn.MaxPool2D(3, stride=2, padding=1))
        stage_ends = []
        channels = second
        for i, (growth, blocks, width, down) in enumerate(zip(arch.growth, arch.depths, arch.widths, arch.downsample)):
            block = HarmonicBlock(channels, growth, arch.multiplier, blocks, depthwise)
            layers.append(block)
            if depth == 85 and i == len(arch.depths) - 1:  # HarDNet85 alone drops out before its last 1x1 conv
                layers.append(nn.Dropout(0.1))
            layers.append(ConvBNReLU6(block.out_channels, width, 1))
            channels = width
            if down:
                stage_ends.append(len(layers) - 1)
                layers.append(DepthwiseBN(width, stride=2) if depthwise else nn.MaxPool2D(2, stride=2))
        stage_ends.append(len(layers) - 1)
        dropout = DS_DROPOUT if depthwise else arch.dropout
        classifier = nn.Linear(channels, self.class_num)
        layers.append(nn.Sequential(nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Dropout(dropout), classifier))
        self.base = nn.LayerList(layers)

        starts = [3] + [end + 1 for end in stage_ends[:-1]]
        groups = {"stem": layers[:3]}
        groups.update({f"stage{i}": layers[start : end + 1] for i, (start, end) in enumerate(zip(starts, stage_ends))})
        self.finish(lr_groups=groups, stages=[layers[end] for end in stage_ends])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for layer in self.base:
            x = layer(x)
        return x


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"HarDNet39_ds": 0.7133, "HarDNet68_ds": 0.7362, "HarDNet68": 0.7546, "HarDNet85": 0.7744},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "HarDNet39_ds": dict(depth=39, depthwise=True),
    "HarDNet68_ds": dict(depth=68, depthwise=True),
    "HarDNet68": dict(depth=68, depthwise=False),
    "HarDNet85": dict(depth=85, depthwise=False),
}

BUILDERS = builders(HarDNet, VARIANTS, WEIGHTS)
