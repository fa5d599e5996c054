"""PP-HGNet (High Performance GPU Net): PaddlePaddle's GPU-friendly backbone built on
VoVNet-style aggregation blocks, weight-compatible with PaddleClas 2.6's ``PPHGNet_*``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._checks import check_positive_int, check_rate
from corolla.plugins.backbones._init import kaiming_init_convs
from corolla.plugins.backbones._layers import ConvBN, LastConvHead
from corolla.plugins.backbones._regularize import exempt_norms_from_decay

# --- building blocks -----------------------------------------------------------------------


class EffectiveSqueezeExcite(nn.Layer):
    """eSE attention: pooled features -> one 1x1 conv (same width) -> sigmoid gate."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv = nn.Conv2D(channels, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * nn.functional.sigmoid(self.conv(self.avg_pool(x)))


class HGBlock(nn.Layer):
    """``layer_num`` chained 3x3 conv-BN-ReLU layers; the input and every layer's output are
    concatenated, mixed by a 1x1 ``aggregation_conv`` and gated by eSE attention (``att``);
    with ``identity`` the block input is added back."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, *, layer_num: int, identity: bool) -> None:
        super().__init__()
        self.identity = identity
        self.layers = nn.LayerList(
            [ConvBN(in_channels if i == 0 else mid_channels, mid_channels, 3, act="relu") for i in range(layer_num)]
        )
        self.aggregation_conv = ConvBN(in_channels + layer_num * mid_channels, out_channels, 1, act="relu")
        self.att = EffectiveSqueezeExcite(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        outputs = [x]
        for layer in self.layers:
            outputs.append(layer(outputs[-1]))
        y = self.att(self.aggregation_conv(paddle.concat(outputs, axis=1)))
        return y + x if self.identity else y


class HGStage(nn.Layer):
    """An optional learnable downsampling (3x3 depthwise conv-BN at stride 2), then ``blocks``
    HG blocks, all but the first residual."""

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, *, blocks: int, layer_num: int, downsample: bool
    ) -> None:
        super().__init__()
        self.downsample = ConvBN(in_channels, in_channels, 3, stride=2, groups=in_channels) if downsample else None
        self.blocks = nn.Sequential(
            *(
                HGBlock(in_channels if i == 0 else out_channels, mid_channels, out_channels, layer_num=layer_num, identity=i > 0)
                for i in range(blocks)
            )
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


# --- the model -----------------------------------------------------------------------------

#: a stage as (in channels, mid channels, out channels, blocks, downsample)
StageSpec = tuple[int, int, int, int, bool]


class PPHGNet(LastConvHead, Backbone):
    """PP-HGNet: a three-conv ``stem`` (the first at stride 2), a 3x3 max-pool, four
    ``stages`` of HG blocks, global pooling, an optional 1x1 ``last_conv`` to ``class_expand``
    channels with ReLU and dropout (``use_last_conv``), and the classifier ``fc``.

    ``lr_mult_list`` has 5 values: the stem, then each stage; ``return_stages`` picks
    stages 0-3.
    """

    def __init__(
        self,
        *,
        stem_channels: tuple[int, int, int],
        stage_specs: tuple[StageSpec, StageSpec, StageSpec, StageSpec],
        layer_num: int,
        use_last_conv: bool = True,
        class_expand: int = 2048,
        dropout_prob: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        if use_last_conv:
            check_positive_int(name, "class_expand", class_expand)
        check_rate(name, "dropout_prob", dropout_prob)

        widths = (3, *stem_channels)
        self.stem = nn.Sequential(
            *(ConvBN(widths[i], widths[i + 1], 3, stride=2 if i == 0 else 1, act="relu") for i in range(len(stem_channels)))
        )
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.stages = nn.LayerList(
            [
                HGStage(in_c, mid_c, out_c, blocks=blocks, layer_num=layer_num, downsample=downsample)
                for in_c, mid_c, out_c, blocks, downsample in stage_specs
            ]
        )

        self.add_head(
            stage_specs[-1][2], use_last_conv=use_last_conv, class_expand=class_expand, act="relu",
            dropout_prob=dropout_prob,
        )

        kaiming_init_convs(self)
        exempt_norms_from_decay(self)
        self.finish(
            lr_groups={"stem": [self.stem], **{f"stage{i}": [stage] for i, stage in enumerate(self.stages)}},
            stages=list(self.stages),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its PP-HGNet docs) ----------------

# PaddleClas publishes PPHGNet_base only distilled (its builder defaults to use_ssld=True):
# pretrained=True loads that file, as use_ssld=True does.
WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {
        "PPHGNet_tiny": 0.7983,
        "PPHGNet_small": 0.8151,
        "PPHGNet_tiny_ssld": 0.8195,
        "PPHGNet_small_ssld": 0.8382,
        "PPHGNet_base_ssld": 0.8500,
    },
) | weights_table(MODEL_ZOO_URL + "legendary_models/{}_ssld_pretrained.pdparams", {"PPHGNet_base": 0.8500})

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "PPHGNet_tiny": dict(
        stem_channels=(48, 48, 96),
        stage_specs=((96, 96, 224, 1, False), (224, 128, 448, 1, True), (448, 160, 512, 2, True), (512, 192, 768, 1, True)),
        layer_num=5,
    ),
    "PPHGNet_small": dict(
        stem_channels=(64, 64, 128),
        stage_specs=((128, 128, 256, 1, False), (256, 160, 512, 1, True), (512, 192, 768, 2, True), (768, 224, 1024, 1, True)),
        layer_num=6,
    ),
    "PPHGNet_base": dict(
        stem_channels=(96, 96, 160),
        stage_specs=((160, 192, 320, 1, False), (320, 224, 640, 2, True), (640, 256, 960, 3, True), (960, 288, 1280, 2, True)),
        layer_num=7,
        dropout_prob=0.2,
    ),
}

BUILDERS = builders(PPHGNet, VARIANTS, WEIGHTS)
