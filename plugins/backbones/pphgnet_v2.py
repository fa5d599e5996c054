"""PP-HGNetV2: the second generation of PaddlePaddle's GPU backbone (a 2x2-conv stem,
light depthwise blocks in the late stages, learnable affine blocks in the small
variants), weight-compatible with PaddleClas 2.6's ``PPHGNetV2_B0`` ... ``PPHGNetV2_B6``."""
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

#: learning-rate factor of every learnable affine block, on top of its stage's multiplier
LAB_LR = 0.01

# --- building blocks -----------------------------------------------------------------------


class LearnableAffine(nn.Layer):
    """``scale * x + bias`` with one learnable scalar each (PaddleClas's LearnableAffineBlock),
    trained at :data:`LAB_LR` times the rate of its stage."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = self.create_parameter(
            [1], attr=paddle.ParamAttr(learning_rate=LAB_LR), default_initializer=nn.initializer.Constant(1.0)
        )
        self.bias = self.create_parameter(
            [1], attr=paddle.ParamAttr(learning_rate=LAB_LR), default_initializer=nn.initializer.Constant(0.0)
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.scale * x + self.bias


class ConvBNAct(ConvBN):
    """:class:`~._layers.ConvBN`, with (``act``) ReLU and then, with ``use_lab``, a learnable affine ``lab``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int | str | None = None,
        groups: int = 1,
        act: bool = True,
        use_lab: bool = False,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups,
            act="relu" if act else None,
        )
        self.lab = LearnableAffine() if act and use_lab else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = super().forward(x)
        return x if self.lab is None else self.lab(x)


class LightConvBNAct(nn.Layer):
    """A linear 1x1 conv-BN, then a depthwise ``kernel_size`` conv-BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, use_lab: bool) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 1, act=False)
        self.conv2 = ConvBNAct(out_channels, out_channels, kernel_size, groups=out_channels, use_lab=use_lab)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv2(self.conv1(x))


class StemBlock(nn.Layer):
    """3x3 conv at stride 2; two 2x2 convs beside a 2x2 max-pool (both "same" padded),
    concatenated; 3x3 conv at stride 2; 1x1 conv."""

    def __init__(self, mid_channels: int, out_channels: int, *, use_lab: bool) -> None:
        super().__init__()
        self.stem1 = ConvBNAct(3, mid_channels, 3, stride=2, use_lab=use_lab)
        self.stem2a = ConvBNAct(mid_channels, mid_channels // 2, 2, padding="SAME", use_lab=use_lab)
        self.stem2b = ConvBNAct(mid_channels // 2, mid_channels, 2, padding="SAME", use_lab=use_lab)
        self.stem3 = ConvBNAct(mid_channels * 2, mid_channels, 3, stride=2, use_lab=use_lab)
        self.stem4 = ConvBNAct(mid_channels, out_channels, 1, use_lab=use_lab)
        self.pool = nn.MaxPool2D(kernel_size=2, stride=1, ceil_mode=True, padding="SAME")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem1(x)
        x = paddle.concat([self.pool(x), self.stem2b(self.stem2a(x))], axis=1)
        return self.stem4(self.stem3(x))


class HGV2Block(nn.Layer):
    """``layer_num`` chained conv layers (plain 3x3 conv-BN-ReLU, or light 1x1 + depthwise
    ``kernel_size`` ones); the input and every layer's output are concatenated, squeezed by
    a 1x1 conv to half the output width and excited by a second 1x1 conv; with
    ``identity`` the block input is added back."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        layer_num: int,
        identity: bool,
        light: bool,
        use_lab: bool,
    ) -> None:
        super().__init__()
        self.identity = identity
        layers = []
        for i in range(layer_num):
            in_c = in_channels if i == 0 else mid_channels
            if light:
                layers.append(LightConvBNAct(in_c, mid_channels, kernel_size, use_lab=use_lab))
            else:
                layers.append(ConvBNAct(in_c, mid_channels, kernel_size, use_lab=use_lab))
        self.layers = nn.LayerList(layers)
        total = in_channels + layer_num * mid_channels
        self.aggregation_squeeze_conv = ConvBNAct(total, out_channels // 2, 1, use_lab=use_lab)
        self.aggregation_excitation_conv = ConvBNAct(out_channels // 2, out_channels, 1, use_lab=use_lab)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        outputs = [x]
        for layer in self.layers:
            outputs.append(layer(outputs[-1]))
        y = self.aggregation_excitation_conv(self.aggregation_squeeze_conv(paddle.concat(outputs, axis=1)))
        return y + x if self.identity else y


class HGV2Stage(nn.Layer):
    """An optional learnable downsampling (3x3 depthwise conv-BN at stride 2), then
    ``blocks`` HGV2 blocks, all but the first residual."""

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, *, blocks: int, downsample: bool, use_lab: bool, **block: Any
    ) -> None:
        super().__init__()
        self.downsample = (
            ConvBNAct(in_channels, in_channels, 3, stride=2, groups=in_channels, act=False) if downsample else None
        )
        self.blocks = nn.Sequential(
            *(
                HGV2Block(in_channels if i == 0 else out_channels, mid_channels, out_channels, identity=i > 0, use_lab=use_lab, **block)
                for i in range(blocks)
            )
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


# --- the model -----------------------------------------------------------------------------

#: a stage as (in, mid, out channels, blocks, downsample, light blocks, kernel size, layers per block)
StageSpec = tuple[int, int, int, int, bool, bool, int, int]


class PPHGNetV2(LastConvHead, Backbone):
    """PP-HGNetV2: ``stem``, four ``stages`` of HGV2 blocks, global pooling, an optional 1x1
    ``last_conv`` to ``class_expand`` channels with ReLU (and a learnable affine with
    ``use_lab``) and dropout (``use_last_conv``), and the classifier ``fc``.

    ``use_lab`` (fixed per variant: B0-B3) adds a learnable scale and bias after every
    activation; as in PaddleClas they train at 0.01 times their stage's rate.
    ``lr_mult_list`` has 5 values: the stem, then each stage; ``return_stages`` picks
    stages 0-3.
    """

    def __init__(
        self,
        *,
        stem_channels: tuple[int, int],
        stage_specs: tuple[StageSpec, StageSpec, StageSpec, StageSpec],
        use_lab: bool,
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

        self.stem = StemBlock(*stem_channels, use_lab=use_lab)
        self.stages = nn.LayerList(
            [
                HGV2Stage(
                    in_c, mid_c, out_c, blocks=blocks, downsample=downsample, light=light,
                    kernel_size=kernel_size, layer_num=layer_num, use_lab=use_lab,
                )
                for in_c, mid_c, out_c, blocks, downsample, light, kernel_size, layer_num in stage_specs
            ]
        )

        self.add_head(
            stage_specs[-1][2], use_last_conv=use_last_conv, class_expand=class_expand, act="relu",
            dropout_prob=dropout_prob, lab=LearnableAffine if use_lab else None,
        )

        kaiming_init_convs(self)
        exempt_norms_from_decay(self)
        groups = {"stem": [self.stem], **{f"stage{i}": [stage] for i, stage in enumerate(self.stages)}}
        self.finish(lr_groups=groups, stages=list(self.stages))
        # finish gave every parameter of a group its multiplier; the affine blocks keep their factor
        for (group,), mult in zip(groups.values(), self.lr_mult_list):
            for param in (p for layer in group.sublayers() if isinstance(layer, LearnableAffine) for p in layer.parameters()):
                param.optimize_attr["learning_rate"] = mult * LAB_LR

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its PP-HGNetV2 docs) ---------------

# PaddleClas publishes PP-HGNetV2 distilled only, in two SSLD stages: pretrained=True loads the
# stage-1 file (PaddleClas's default, recommended for fine-tuning; no top-1 reported),
# use_ssld=True the final stage-2 file whose top-1 the docs report. PaddleClas itself loads
# stage 1 for both.
WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_ssld_stage1_pretrained.pdparams", {f"PPHGNetV2_B{i}": None for i in range(7)}
) | weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {
        "PPHGNetV2_B0_ssld": 0.7777,
        "PPHGNetV2_B1_ssld": 0.7918,
        "PPHGNetV2_B2_ssld": 0.8174,
        "PPHGNetV2_B3_ssld": 0.8298,
        "PPHGNetV2_B4_ssld": 0.8357,
        "PPHGNetV2_B5_ssld": 0.8475,
        "PPHGNetV2_B6_ssld": 0.8630,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "PPHGNetV2_B0": dict(
        stem_channels=(16, 16),
        stage_specs=(
            (16, 16, 64, 1, False, False, 3, 3),
            (64, 32, 256, 1, True, False, 3, 3),
            (256, 64, 512, 2, True, True, 5, 3),
            (512, 128, 1024, 1, True, True, 5, 3),
        ),
        use_lab=True,
    ),
    "PPHGNetV2_B1": dict(
        stem_channels=(24, 32),
        stage_specs=(
            (32, 32, 64, 1, False, False, 3, 3),
            (64, 48, 256, 1, True, False, 3, 3),
            (256, 96, 512, 2, True, True, 5, 3),
            (512, 192, 1024, 1, True, True, 5, 3),
        ),
        use_lab=True,
    ),
    "PPHGNetV2_B2": dict(
        stem_channels=(24, 32),
        stage_specs=(
            (32, 32, 96, 1, False, False, 3, 4),
            (96, 64, 384, 1, True, False, 3, 4),
            (384, 128, 768, 3, True, True, 5, 4),
            (768, 256, 1536, 1, True, True, 5, 4),
        ),
        use_lab=True,
    ),
    "PPHGNetV2_B3": dict(
        stem_channels=(24, 32),
        stage_specs=(
            (32, 32, 128, 1, False, False, 3, 5),
            (128, 64, 512, 1, True, False, 3, 5),
            (512, 128, 1024, 3, True, True, 5, 5),
            (1024, 256, 2048, 1, True, True, 5, 5),
        ),
        use_lab=True,
    ),
    "PPHGNetV2_B4": dict(
        stem_channels=(32, 48),
        stage_specs=(
            (48, 48, 128, 1, False, False, 3, 6),
            (128, 96, 512, 1, True, False, 3, 6),
            (512, 192, 1024, 3, True, True, 5, 6),
            (1024, 384, 2048, 1, True, True, 5, 6),
        ),
        use_lab=False,
    ),
    "PPHGNetV2_B5": dict(
        stem_channels=(32, 64),
        stage_specs=(
            (64, 64, 128, 1, False, False, 3, 6),
            (128, 128, 512, 2, True, False, 3, 6),
            (512, 256, 1024, 5, True, True, 5, 6),
            (1024, 512, 2048, 2, True, True, 5, 6),
        ),
        use_lab=False,
    ),
    "PPHGNetV2_B6": dict(
        stem_channels=(48, 96),
        stage_specs=(
            (96, 96, 192, 2, False, False, 3, 6),
            (192, 192, 512, 3, True, False, 3, 6),
            (512, 384, 1024, 6, True, True, 5, 6),
            (1024, 768, 2048, 3, True, True, 5, 6),
        ),
        use_lab=False,
    ),
}

BUILDERS = builders(PPHGNetV2, VARIANTS, WEIGHTS)
