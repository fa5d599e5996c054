"""DenseNet (Huang et al. 2016, https://arxiv.org/abs/1608.06993), weight-compatible with
PaddleClas 2.6's ``DenseNet121/161/169/201/264`` (model_zoo/densenet.py)."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import STABLE_BATCHNORM_SIZE, Backbone, builders
from corolla.plugins.backbones._checks import check_positive_int, check_rate
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import LeanBatchNorm2D, NormReLUConv, ZooConvBN

# --- building blocks -----------------------------------------------------------------------


class DenseLayer(nn.Layer):
    """1x1 bottleneck to ``bottleneck_width * growth_rate`` channels, 3x3 conv to
    ``growth_rate`` new channels, appended to the input."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_width: int, dropout: float) -> None:
        super().__init__()
        self.bn_ac_func1 = NormReLUConv(in_channels, bottleneck_width * growth_rate, 1)
        self.bn_ac_func2 = NormReLUConv(bottleneck_width * growth_rate, growth_rate, 3)
        self.dropout_func = nn.Dropout(p=dropout, mode="downscale_in_infer") if dropout else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        new = self.bn_ac_func2(self.bn_ac_func1(x))
        if self.dropout_func is not None:
            new = self.dropout_func(new)
        return paddle.concat([x, new], axis=1)


class DenseBlock(nn.Sequential):
    """``layers`` dense layers, named ``<prefix>_1``, ``<prefix>_2``, ... as in PaddleClas."""

    def __init__(
        self, prefix: str, in_channels: int, *, layers: int, growth_rate: int, bottleneck_width: int, dropout: float
    ) -> None:
        super().__init__(
            *(
                (f"{prefix}_{i + 1}", DenseLayer(in_channels + i * growth_rate, growth_rate, bottleneck_width, dropout))
                for i in range(layers)
            )
        )


class Transition(nn.Layer):
    """Between dense blocks: pre-activated 1x1 conv (halving the channels), 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_ac_func = NormReLUConv(in_channels, out_channels, 1)
        self.pool2d_avg = nn.AvgPool2D(2, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.pool2d_avg(self.conv_ac_func(x))


# --- the model -----------------------------------------------------------------------------


class DenseNet(Backbone):
    """DenseNet: stem ``conv1_func`` (7x7/2 conv-BN-ReLU) and 3x3/2 max pooling, four dense
    blocks ``db_conv_2..5`` with a transition ``tr_conv2_blk..tr_conv4_blk`` after each of the
    first three, a final BN-ReLU ``batch_norm``, global pooling and the classifier ``out``.

    Fixed per name: ``init_channels`` (stem width), ``growth_rate`` and ``block_layers``
    (dense layers per block). ``bn_size``: bottleneck width, as a multiple of the growth
    rate; ``dropout``: dropout rate after each dense layer (PaddleClas's default 0).
    ``lr_mult_list`` has 5 values: the stem, then each dense block with the transition after
    it (the last with the final BN); ``return_stages`` picks the output of dense block 0-3.
    """

    def __init__(
        self,
        *,
        init_channels: int,
        growth_rate: int,
        block_layers: Sequence[int],
        bn_size: int = 4,
        dropout: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        check_positive_int(name, "bn_size", bn_size)
        dropout = check_rate(name, "dropout", dropout)

        self.conv1_func = ZooConvBN(3, init_channels, 7, stride=2, act="relu")
        self.pool2d_max = nn.MaxPool2D(3, stride=2, padding=1)
        channels = init_channels
        self.stages: list[nn.Layer] = []
        groups: dict[str, list[nn.Layer]] = {"stem": [self.conv1_func]}
        for i, layers in enumerate(block_layers):
            block = DenseBlock(
                f"conv{i + 2}", channels,
                layers=layers, growth_rate=growth_rate, bottleneck_width=bn_size, dropout=dropout,
            )
            self.stages.append(self.add_sublayer(f"db_conv_{i + 2}", block))
            channels += layers * growth_rate
            if i < len(block_layers) - 1:
                transition = self.add_sublayer(f"tr_conv{i + 2}_blk", Transition(channels, channels // 2))
                groups[f"stage{i}"] = [block, transition]
                channels //= 2
        self.batch_norm = LeanBatchNorm2D(channels)
        groups[f"stage{len(block_layers) - 1}"] = [block, self.batch_norm]
        self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
        self.out = uniform_linear(channels, self.class_num)
        self.finish(lr_groups=groups, stages=self.stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool2d_max(self.conv1_func(x))
        for i, block in enumerate(self.stages):
            x = block(x)
            if i < len(self.stages) - 1:
                x = getattr(self, f"tr_conv{i + 2}_blk")(x)
        x = nn.functional.relu(self.batch_norm(x))
        return self.out(paddle.flatten(self.pool2d_avg(x), start_axis=1))


MIN_INPUT_SIZE = STABLE_BATCHNORM_SIZE  # see there why not 32

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "DenseNet121": 0.7566,
        "DenseNet161": 0.7857,
        "DenseNet169": 0.7681,
        "DenseNet201": 0.7763,
        "DenseNet264": 0.7796,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "DenseNet121": dict(init_channels=64, growth_rate=32, block_layers=(6, 12, 24, 16)),
    "DenseNet161": dict(init_channels=96, growth_rate=48, block_layers=(6, 12, 36, 24)),
    "DenseNet169": dict(init_channels=64, growth_rate=32, block_layers=(6, 12, 32, 32)),
    "DenseNet201": dict(init_channels=64, growth_rate=32, block_layers=(6, 12, 48, 32)),
    "DenseNet264": dict(init_channels=64, growth_rate=32, block_layers=(6, 12, 64, 48)),
}

BUILDERS = builders(DenseNet, VARIANTS, WEIGHTS)
