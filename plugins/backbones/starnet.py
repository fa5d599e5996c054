"""StarNet (Ma et al. 2024, https://arxiv.org/abs/2403.19967): a small convolutional net
whose blocks multiply two branches element-wise (the "star" operation), weight-compatible
with PaddleClas 2.6's ``StarNet_S1..S4``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._checks import check_rate
from corolla.plugins.backbones._layers import LeanBatchNorm2D
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates

#: the hidden width of a block's star product, in multiples of its channels
MLP_RATIO = 4
#: the stem's channels, whatever the variant's base width
STEM_CHANNELS = 32

# --- building blocks -----------------------------------------------------------------------


class Conv(nn.Layer):
    """A convolution with bias (``conv``), then BatchNorm (``bn``) where ``norm``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        *,
        stride: int = 1,
        groups: int = 1,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, groups=groups
        )
        self.bn = LeanBatchNorm2D(out_channels) if norm else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv(x)
        return x if self.bn is None else self.bn(x)


class StarBlock(nn.Layer):
    """7x7 depthwise conv-BN; two 1x1 expansions ``f1``, ``f2`` multiplied as relu6(f1) * f2;
    a 1x1 projection ``g`` with BN; a second 7x7 depthwise conv; then the residual."""

    def __init__(self, dim: int, *, drop_path: float) -> None:
        super().__init__()
        self.dwconv = Conv(dim, dim, 7, groups=dim)
        self.f1 = Conv(dim, MLP_RATIO * dim, norm=False)
        self.f2 = Conv(dim, MLP_RATIO * dim, norm=False)
        self.g = Conv(MLP_RATIO * dim, dim)
        self.dwconv2 = Conv(dim, dim, 7, groups=dim, norm=False)
        self.act = nn.ReLU6()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.dwconv(x)
        y = self.act(self.f1(y)) * self.f2(y)
        return x + self.drop_path(self.dwconv2(self.g(y)))


# --- the model -----------------------------------------------------------------------------


class StarNet(Backbone):
    """StarNet: a 3x3/2 conv-BN-ReLU6 ``stem`` (32 channels), four ``stages`` (a 3x3/2 conv-BN
    downsampler, then :class:`StarBlock`\\ s) of ``base_dim * 2**i`` channels, BatchNorm, global
    pooling and the classifier ``head``.

    ``depths``: blocks per stage; ``drop_path_rate``: stochastic depth of the last block
    (rising linearly from 0); ``drop_rate``: dropout before the classifier (PaddleClas's
    configs pass 0 and its StarNet ignores the argument). ``lr_mult_list`` has 5 values: the
    stem, then each stage; ``return_stages`` picks stages 0-3.
    """

    def __init__(
        self,
        *,
        base_dim: int,
        depths: tuple[int, int, int, int],
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        rates = iter(drop_path_rates(check_rate(name, "drop_path_rate", drop_path_rate), sum(depths)))
        drop_rate = check_rate(name, "drop_rate", drop_rate)

        self.stem = nn.Sequential(Conv(3, STEM_CHANNELS, 3, stride=2), nn.ReLU6())
        stages, channels = [], STEM_CHANNELS
        for i, depth in enumerate(depths):
            width = base_dim * 2**i
            blocks = [StarBlock(width, drop_path=next(rates)) for _ in range(depth)]
            stages.append(nn.Sequential(Conv(channels, width, 3, stride=2), *blocks))
            channels = width
        self.stages = nn.LayerList(stages)
        self.norm = LeanBatchNorm2D(channels)
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(drop_rate) if drop_rate else None
        self.head = nn.Linear(channels, self.class_num)

        self.finish(lr_groups={"stem": [self.stem], **{f"stage{i}": [s] for i, s in enumerate(stages)}}, stages=stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        x = self.avgpool(self.norm(x)).flatten(1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.head(x)


# --- pretrained weights (PaddleClas 2.6 model zoo, converted from the authors'; top-1 from its StarNet docs) --

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"StarNet_S1": 0.736, "StarNet_S2": 0.748, "StarNet_S3": 0.770, "StarNet_S4": 0.790},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "StarNet_S1": dict(base_dim=24, depths=(2, 2, 8, 3)),
    "StarNet_S2": dict(base_dim=32, depths=(1, 2, 6, 2)),
    "StarNet_S3": dict(base_dim=32, depths=(2, 2, 8, 4)),
    "StarNet_S4": dict(base_dim=32, depths=(3, 3, 12, 5)),
}

BUILDERS = builders(StarNet, VARIANTS, WEIGHTS)
