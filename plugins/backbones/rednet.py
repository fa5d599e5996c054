"""RedNet (Li et al. 2021, https://arxiv.org/abs/2103.06255): ResNet bottlenecks whose 3x3
convolution is an involution, a kernel generated at each pixel from that pixel's features and
shared across the channels of a group. Weight-compatible with PaddleClas 2.6's ``RedNet*``
(which reuses Paddle's ``paddle.vision`` ResNet, hence its ``bn1``/``downsample`` names)."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._layers import ConvBN, LeanBatchNorm2D

# --- building blocks -----------------------------------------------------------------------

GROUP_CHANNELS = 16


class Involution(nn.Layer):
    """Involution over ``kernel_size`` x ``kernel_size`` windows: ``conv1`` (1x1 conv-BN-ReLU
    to a quarter of the channels) and ``conv2`` (1x1 conv) turn each pixel's features into
    one kernel per group of 16 channels; every output pixel is its window weighted by that
    kernel. With a stride, the kernels come from average-pooled features."""

    def __init__(self, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.groups = channels // GROUP_CHANNELS
        self.conv1 = ConvBN(channels, channels // 4, 1, act="relu")
        # a Sequential only to keep PaddleClas's parameter names (conv2.conv.*)
        self.conv2 = nn.Sequential(("conv", nn.Conv2D(channels // 4, kernel_size**2 * self.groups, 1)))
        # ceil_mode: on odd maps the kernels then match unfold's windows (PaddleClas fails there)
        self.avgpool = nn.AvgPool2D(stride, stride, ceil_mode=True) if stride > 1 else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        kernels = self.conv2(self.conv1(x if self.avgpool is None else self.avgpool(x)))
        height, width = kernels.shape[2:]
        window = self.kernel_size**2
        kernels = kernels.reshape([0, self.groups, 1, window, height, width])
        patches = nn.functional.unfold(x, self.kernel_size, strides=self.stride, paddings=(self.kernel_size - 1) // 2)
        patches = patches.reshape([0, self.groups, GROUP_CHANNELS, window, height, width])
        return (kernels * patches).sum(axis=3).reshape([0, self.channels, height, width])


class InvolutionBottleneck(nn.Layer):
    """1x1 conv, 7x7 involution (carries the stride), 1x1 conv to ``4 * planes``, each with its
    BatchNorm, plus the shortcut (``downsample``: a strided 1x1 conv and BatchNorm where the
    shape changes).

    The last BatchNorm starts with zero scale, so that a new block adds nothing to its
    shortcut, as in the RedNet authors' code. PaddleClas's port starts it at one: each
    involution then squares the scale of its input, and a freshly initialised net's
    eval-mode logits overflow (or collapse to zero) before any training.
    """

    def __init__(self, in_channels: int, planes: int, *, stride: int) -> None:
        super().__init__()
        out_channels = planes * 4
        self.conv1 = nn.Conv2D(in_channels, planes, 1, bias_attr=False)
        self.bn1 = LeanBatchNorm2D(planes)
        self.conv2 = Involution(planes, 7, stride)
        self.bn2 = LeanBatchNorm2D(planes)
        self.conv3 = nn.Conv2D(planes, out_channels, 1, bias_attr=False)
        self.bn3 = LeanBatchNorm2D(out_channels, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2D(in_channels, out_channels, 1, stride=stride, bias_attr=False), LeanBatchNorm2D(out_channels)
            )
        else:
            self.downsample = None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = nn.functional.relu(self.bn1(self.conv1(x)))
        y = nn.functional.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return nn.functional.relu(y + shortcut)


# --- the model -----------------------------------------------------------------------------

STAGE_PLANES = (64, 128, 256, 512)


class RedNet(Backbone):
    """RedNet: a stem (3x3 conv, 3x3 involution, 3x3 conv; ``stem``), max pool, four stages of
    :class:`InvolutionBottleneck` blocks (``layer1..layer4``), global pooling and the
    classifier ``fc``.

    ``depths``: blocks per stage. ``lr_mult_list`` has 5 values: the stem, then each stage;
    ``return_stages`` picks stages 0-3.
    """

    def __init__(self, *, depths: Sequence[int], **contract: Any) -> None:
        super().__init__(**contract)
        self.stem = nn.Sequential(
            ConvBN(3, 32, 3, stride=2, act="relu"),
            Involution(32, 3, 1),
            LeanBatchNorm2D(32),
            nn.ReLU(),
            ConvBN(32, 64, 3, act="relu"),
        )
        self.maxpool = nn.MaxPool2D(3, stride=2, padding=1)
        in_channels = 64
        stages = []
        for index, (count, planes) in enumerate(zip(depths, STAGE_PLANES)):
            blocks = []
            for i in range(count):
                blocks.append(InvolutionBottleneck(in_channels, planes, stride=2 if i == 0 and index > 0 else 1))
                in_channels = planes * 4
            stages.append(self.add_sublayer(f"layer{index + 1}", nn.Sequential(*blocks)))
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_channels, self.class_num)
        self.finish(
            lr_groups={"stem": [self.stem], **{f"layer{i + 1}": [stage] for i, stage in enumerate(stages)}},
            stages=stages,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.maxpool(self.stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"RedNet26": 0.7595, "RedNet38": 0.7747, "RedNet50": 0.7833, "RedNet101": 0.7894, "RedNet152": 0.7917},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "RedNet26": dict(depths=(1, 2, 4, 1)),
    "RedNet38": dict(depths=(2, 3, 5, 2)),
    "RedNet50": dict(depths=(3, 4, 6, 3)),
    "RedNet101": dict(depths=(3, 4, 23, 3)),
    "RedNet152": dict(depths=(3, 8, 36, 3)),
}


def MIN_INPUT_SIZE(name: str) -> int:
    """The input size the tests use: 96 beyond RedNet26. The parity test sets BatchNorm
    statistics from two images; on 32x32 images (1x1 maps in the last stage) the deeper nets'
    eval logits then overflow float32, PaddleClas's as much as these."""
    return 32 if name == "RedNet26" else 96


BUILDERS = builders(RedNet, VARIANTS, WEIGHTS)
