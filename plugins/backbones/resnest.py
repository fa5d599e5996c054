"""ResNeSt (Zhang et al. 2020, https://arxiv.org/abs/2004.08955): ResNet-D bottlenecks whose
3x3 convolution is a split-attention convolution, ``radix`` parallel convolutions mixed by
attention weights computed from their pooled sum. Weight-compatible with PaddleClas 2.6's
``ResNeSt*``."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn
from paddle.nn.initializer import KaimingNormal

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import LeanBatchNorm2D, ZooConvBN
from corolla.plugins.backbones._regularize import exempt_norms_from_decay

# --- building blocks -----------------------------------------------------------------------


class SplitAttentionConv(nn.Layer):
    """A 3x3 conv-BN-ReLU with ``radix`` times the output channels (``conv1``, one group per
    split), then per-channel attention over the splits: the splits' sum is pooled and
    squeezed (``conv2``), ``conv3`` gives one logit per split and channel, softmax across the
    splits (a sigmoid gate when ``radix`` is 1) weighs them into one output."""

    def __init__(self, channels: int, *, radix: int, reduction: int = 4) -> None:
        super().__init__()
        self.radix = radix
        self.conv1 = ZooConvBN(channels, channels * radix, 3, groups=radix, act="relu")
        self.avg_pool2d = nn.AdaptiveAvgPool2D(1)
        squeezed = max(channels * radix // reduction, 32)
        self.conv2 = ZooConvBN(channels, squeezed, 1, act="relu")
        self.conv3 = nn.Conv2D(squeezed, channels * radix, 1, weight_attr=paddle.ParamAttr(initializer=KaimingNormal()))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv1(x)
        if self.radix == 1:
            return x * nn.functional.sigmoid(self.conv3(self.conv2(self.avg_pool2d(x))))
        splits = paddle.split(x, self.radix, axis=1)
        logits = self.conv3(self.conv2(self.avg_pool2d(paddle.add_n(splits))))
        weights = nn.functional.softmax(logits.reshape([0, self.radix, -1]), axis=1).reshape([0, -1, 1, 1])
        weights = paddle.split(weights, self.radix, axis=1)
        return paddle.add_n([split * weight for split, weight in zip(splits, weights)])


class SplitAttentionBottleneck(nn.Layer):
    """1x1 conv (``conv1``), split-attention 3x3 conv (``conv2``), 1x1 conv to ``4 * planes``
    (``conv3``), plus the shortcut.

    A strided block downsamples with a 3x3 average pool, before ``conv2`` (``avd_first``) or
    after it; where the shape changes, the shortcut average-pools with the stride and then
    projects (``conv4`` and its ``_batch_norm``).
    """

    def __init__(self, in_channels: int, planes: int, *, stride: int, radix: int, avd_first: bool) -> None:
        super().__init__()
        out_channels = planes * 4
        self.avd_first = avd_first
        self.conv1 = ZooConvBN(in_channels, planes, 1, act="relu")
        self.avd_pool = nn.AvgPool2D(3, stride=stride, padding=1) if stride > 1 else None
        self.conv2 = SplitAttentionConv(planes, radix=radix)
        self.conv3 = ZooConvBN(planes, out_channels, 1)
        self.short_pool = nn.AvgPool2D(stride, stride=stride) if stride > 1 else None
        if stride != 1 or in_channels != out_channels:
            self.conv4 = nn.Conv2D(
                in_channels, out_channels, 1, weight_attr=paddle.ParamAttr(initializer=KaimingNormal()), bias_attr=False
            )
            self._batch_norm = LeanBatchNorm2D(out_channels)
        else:
            self.conv4 = None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.conv1(x)
        if self.avd_pool is not None and self.avd_first:
            y = self.avd_pool(y)
        y = self.conv2(y)
        if self.avd_pool is not None and not self.avd_first:
            y = self.avd_pool(y)
        y = self.conv3(y)
        if self.conv4 is not None:
            x = self._batch_norm(self.conv4(x if self.short_pool is None else self.short_pool(x)))
        return nn.functional.relu(x + y)


# --- the model -----------------------------------------------------------------------------

STAGE_PLANES = (64, 128, 256, 512)


class ResNeSt(Backbone):
    """ResNeSt: a deep 3-conv stem (``stem``), max pool, four stages of
    :class:`SplitAttentionBottleneck` blocks (``layer1..layer4``), global pooling and the
    classifier ``out``.

    ``depths``: blocks per stage; ``radix``: splits per split-attention conv;
    ``stem_width``: channels of the stem's first two convs (the third has twice as many);
    ``avd_first``: strided blocks pool before their split-attention conv. ``lr_mult_list``
    has 5 values: the stem, then each stage; ``return_stages`` picks stages 0-3.
    """

    def __init__(self, *, depths: Sequence[int], radix: int, stem_width: int, avd_first: bool, **contract: Any) -> None:
        super().__init__(**contract)
        self.stem = nn.Sequential(
            ("conv1", ZooConvBN(3, stem_width, 3, stride=2, act="relu")),
            ("conv2", ZooConvBN(stem_width, stem_width, 3, act="relu")),
            ("conv3", ZooConvBN(stem_width, stem_width * 2, 3, act="relu")),
        )
        self.max_pool2d = nn.MaxPool2D(3, stride=2, padding=1)
        in_channels = stem_width * 2
        stages = []
        for index, (count, planes) in enumerate(zip(depths, STAGE_PLANES)):
            name = f"layer{index + 1}"
            blocks = []
            for i in range(count):
                stride = 2 if i == 0 and index > 0 else 1
                block = SplitAttentionBottleneck(in_channels, planes, stride=stride, radix=radix, avd_first=avd_first)
                blocks.append((f"{name}_bottleneck_{i}", block))
                in_channels = planes * 4
            stages.append(self.add_sublayer(name, nn.Sequential(*blocks)))

        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten()
        self.out = uniform_linear(in_channels, self.class_num)
        exempt_norms_from_decay(self)
        self.finish(
            lr_groups={"stem": [self.stem], **{f"layer{i + 1}": [stage] for i, stage in enumerate(stages)}},
            stages=stages,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.max_pool2d(self.stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.out(self.flatten(self.pool2d_avg(x)))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "ResNeSt50_fast_1s1x64d": 0.8035,
        "ResNeSt50": 0.8083,
        "ResNeSt101": None,
        "ResNeSt200": None,
        "ResNeSt269": None,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "ResNeSt50_fast_1s1x64d": dict(depths=(3, 4, 6, 3), radix=1, stem_width=32, avd_first=True),
    "ResNeSt50": dict(depths=(3, 4, 6, 3), radix=2, stem_width=32, avd_first=False),
    "ResNeSt101": dict(depths=(3, 4, 23, 3), radix=2, stem_width=64, avd_first=False),
    "ResNeSt200": dict(depths=(3, 24, 36, 3), radix=2, stem_width=64, avd_first=False),
    "ResNeSt269": dict(depths=(3, 30, 48, 8), radix=2, stem_width=64, avd_first=False),
}


def MIN_INPUT_SIZE(name: str) -> int:
    """The smallest input the tests use: 64 for ResNeSt269, whose gradients overflow float32 in
    training on two 32x32 images (BatchNorm over 1x1 maps; PaddleClas's model does the same)."""
    return 64 if name == "ResNeSt269" else 32


BUILDERS = builders(ResNeSt, VARIANTS, WEIGHTS)
