"""MobileNetV4 (Qin et al. 2024, https://arxiv.org/abs/2404.10518): universal inverted
bottlenecks and, in the hybrid variants, mobile multi-query attention; weight-compatible
with PaddleClas 2.6's ``MobileNetV4_{conv_small,conv_medium,conv_large,hybrid_medium,hybrid_large}``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, split_stages
from corolla.plugins.backbones._checks import check_positive_int, check_rates
from corolla.plugins.backbones._layers import ConvBN, LeanBatchNorm2D
from corolla.plugins.backbones._regularize import DropPath, exempt_norms_from_decay

# --- building blocks -----------------------------------------------------------------------


class LayerScale(nn.Layer):
    """A learnable per-channel scale ``gamma`` (initialised to ``init_value``)."""

    def __init__(self, channels: int, init_value: float) -> None:
        super().__init__()
        self.gamma = self.create_parameter([channels], default_initializer=nn.initializer.Constant(init_value))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * self.gamma.reshape([1, -1, 1, 1])


class Residual(nn.Layer):
    """Base of the residual blocks: ``x + drop_path(branch(x))`` where the shape allows."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, drop_path_rate: float) -> None:
        super().__init__()
        self.has_shortcut = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate else None

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.branch(x)
        if not self.has_shortcut:
            return y
        return x + (y if self.drop_path is None else self.drop_path(y))


class EdgeResidual(Residual):
    """Fused inverted bottleneck: a full ``kernel_size`` conv expansion (with the stride),
    then a linear 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int, *, mid_channels: int, kernel_size: int, stride: int, act: str, drop_path_rate: float) -> None:
        super().__init__(in_channels, out_channels, stride, drop_path_rate)
        self.conv_exp = ConvBN(in_channels, mid_channels, kernel_size, stride=stride, act=act)
        self.conv_pwl = ConvBN(mid_channels, out_channels, 1)

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv_pwl(self.conv_exp(x))


class UniversalInvertedResidual(Residual):
    """UIB: optional depthwise conv before the 1x1 expansion (``start_kernel``), optional
    depthwise conv after it (``mid_kernel``, with the stride), a linear 1x1 projection and,
    with ``layer_scale_init``, a learnable per-channel scale. A kernel of 0 leaves that
    depthwise conv out (the ExtraDW / IB / ConvNeXt-like / FFN variants of the block)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        mid_channels: int,
        start_kernel: int,
        mid_kernel: int,
        stride: int,
        act: str,
        layer_scale_init: float,
        drop_path_rate: float,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, drop_path_rate)
        self.dw_start = ConvBN(in_channels, in_channels, start_kernel, groups=in_channels) if start_kernel else None
        self.pw_exp = ConvBN(in_channels, mid_channels, 1, act=act)
        self.dw_mid = (
            ConvBN(mid_channels, mid_channels, mid_kernel, stride=stride, groups=mid_channels, act=act) if mid_kernel else None
        )
        self.pw_proj = ConvBN(mid_channels, out_channels, 1)
        self.layer_scale = LayerScale(out_channels, layer_scale_init) if layer_scale_init else None

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.dw_start is not None:
            x = self.dw_start(x)
        x = self.pw_exp(x)
        if self.dw_mid is not None:
            x = self.dw_mid(x)
        x = self.pw_proj(x)
        return x if self.layer_scale is None else self.layer_scale(x)


class MobileAttention(Residual):
    """Mobile multi-query attention: BN, then ``heads`` query heads over one shared key and
    value, computed from a (with ``kv_stride`` > 1, depthwise-downsampled) map, a 1x1 output
    projection and a learnable per-channel scale.

    PaddleClas scales the scores by ``query_dim ** -0.5``, except with ``use_fused_attn``,
    where its fused kernel uses ``head_dim ** -0.5`` (MobileNetV4's own scale); corolla
    computes both paths the same way, so either setting gives PaddleClas's outputs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kv_dim: int,
        kernel_size: int,
        heads: int,
        kv_stride: int,
        stride: int,
        layer_scale_init: float,
        drop_path_rate: float,
        use_fused_attn: bool,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, drop_path_rate)
        self.heads = heads
        self.query_dim = heads * kv_dim
        self.scale = kv_dim**-0.5 if use_fused_attn else self.query_dim**-0.5
        self.norm = LeanBatchNorm2D(in_channels)
        self.query_proj = nn.Conv2D(in_channels, self.query_dim, 1, bias_attr=False)
        if kv_stride > 1:
            self.key_down_proj = ConvBN(in_channels, in_channels, kernel_size, stride=kv_stride, groups=in_channels)
            self.value_down_proj = ConvBN(in_channels, in_channels, kernel_size, stride=kv_stride, groups=in_channels)
        else:
            self.key_down_proj = self.value_down_proj = None
        self.key_proj = nn.Conv2D(in_channels, kv_dim, 1, bias_attr=False)
        self.value_proj = nn.Conv2D(in_channels, kv_dim, 1, bias_attr=False)
        self.proj = nn.Conv2D(self.query_dim, out_channels, 1, bias_attr=False)
        self.layer_scale = LayerScale(out_channels, layer_scale_init) if layer_scale_init else None

    def branch(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.norm(x)
        batch, _, height, width = x.shape
        # queries [B, heads, HW, head_dim]; the one key [B, 1, kv_dim, HW'] and value [B, 1, HW', kv_dim]
        query = self.query_proj(x).reshape([batch, self.heads, -1, height * width]).transpose([0, 1, 3, 2])
        key_in = x if self.key_down_proj is None else self.key_down_proj(x)
        value_in = x if self.value_down_proj is None else self.value_down_proj(x)
        key = self.key_proj(key_in).flatten(2).unsqueeze(1)
        value = self.value_proj(value_in).flatten(2).transpose([0, 2, 1]).unsqueeze(1)
        attention = nn.functional.softmax(paddle.matmul(query * self.scale, key), axis=-1)
        out = paddle.matmul(attention, value)  # [B, heads, HW, kv_dim]
        out = out.transpose([0, 2, 1, 3]).reshape([batch, height, width, self.query_dim]).transpose([0, 3, 1, 2])
        out = self.proj(out)
        return out if self.layer_scale is None else self.layer_scale(out)


# --- the model -----------------------------------------------------------------------------

#: a block: ("conv", out, kernel, stride) a conv-BN-act; ("er", out, mid, kernel, stride) an
#: edge residual; ("uir", out, mid, start kernel, mid kernel, stride) a universal inverted
#: bottleneck; ("mqa", out, kv_dim, kernel, heads, kv_stride, stride) mobile attention
BlockSpec = tuple[str | int, ...]

CONV_SMALL: tuple[BlockSpec, ...] = (
    ("conv", 32, 3, 2), ("conv", 32, 1, 1),
    ("conv", 96, 3, 2), ("conv", 64, 1, 1),
    ("uir", 96, 192, 5, 5, 2), ("uir", 96, 192, 0, 3, 1), ("uir", 96, 192, 0, 3, 1),
    ("uir", 96, 192, 0, 3, 1), ("uir", 96, 192, 0, 3, 1), ("uir", 96, 384, 3, 0, 1),
    ("uir", 128, 576, 3, 3, 2), ("uir", 128, 512, 5, 5, 1), ("uir", 128, 512, 0, 5, 1),
    ("uir", 128, 384, 0, 5, 1), ("uir", 128, 512, 0, 3, 1), ("uir", 128, 512, 0, 3, 1),
    ("conv", 960, 1, 1),
)  # fmt: skip
CONV_MEDIUM: tuple[BlockSpec, ...] = (
    ("er", 48, 128, 3, 2),
    ("uir", 80, 192, 3, 5, 2), ("uir", 80, 160, 3, 3, 1),
    ("uir", 160, 480, 3, 5, 2), ("uir", 160, 640, 3, 3, 1), ("uir", 160, 640, 3, 3, 1),
    ("uir", 160, 640, 3, 5, 1), ("uir", 160, 640, 3, 3, 1), ("uir", 160, 640, 3, 0, 1),
    ("uir", 160, 320, 0, 0, 1), ("uir", 160, 640, 3, 0, 1),
    ("uir", 256, 960, 5, 5, 2), ("uir", 256, 1024, 5, 5, 1), ("uir", 256, 1024, 3, 5, 1),
    ("uir", 256, 1024, 3, 5, 1), ("uir", 256, 1024, 0, 0, 1), ("uir", 256, 1024, 3, 0, 1),
    ("uir", 256, 512, 3, 5, 1), ("uir", 256, 1024, 5, 5, 1), ("uir", 256, 1024, 0, 0, 1),
    ("uir", 256, 1024, 0, 0, 1), ("uir", 256, 512, 5, 0, 1),
    ("conv", 960, 1, 1),
)  # fmt: skip
CONV_LARGE: tuple[BlockSpec, ...] = (
    ("er", 48, 96, 3, 2),
    ("uir", 96, 192, 3, 5, 2), ("uir", 96, 384, 3, 3, 1),
    ("uir", 192, 384, 3, 5, 2), ("uir", 192, 768, 3, 3, 1), ("uir", 192, 768, 3, 3, 1),
    ("uir", 192, 768, 3, 3, 1), ("uir", 192, 768, 3, 5, 1), ("uir", 192, 768, 5, 3, 1),
    ("uir", 192, 768, 5, 3, 1), ("uir", 192, 768, 5, 3, 1), ("uir", 192, 768, 5, 3, 1),
    ("uir", 192, 768, 5, 3, 1), ("uir", 192, 768, 3, 0, 1),
    ("uir", 512, 768, 5, 5, 2), ("uir", 512, 2048, 5, 5, 1), ("uir", 512, 2048, 5, 5, 1),
    ("uir", 512, 2048, 5, 5, 1), ("uir", 512, 2048, 5, 0, 1), ("uir", 512, 2048, 5, 3, 1),
    ("uir", 512, 2048, 5, 0, 1), ("uir", 512, 2048, 5, 0, 1), ("uir", 512, 2048, 5, 3, 1),
    ("uir", 512, 2048, 5, 5, 1), ("uir", 512, 2048, 5, 0, 1), ("uir", 512, 2048, 5, 0, 1),
    ("uir", 512, 2048, 5, 0, 1),
    ("conv", 960, 1, 1),
)  # fmt: skip
HYBRID_MEDIUM: tuple[BlockSpec, ...] = (
    ("er", 48, 128, 3, 2),
    ("uir", 80, 192, 3, 5, 2), ("uir", 80, 160, 3, 3, 1),
    ("uir", 160, 480, 3, 5, 2), ("uir", 160, 320, 0, 0, 1), ("uir", 160, 640, 3, 3, 1),
    ("uir", 160, 640, 3, 5, 1), ("mqa", 160, 64, 3, 4, 2, 1), ("uir", 160, 640, 3, 3, 1),
    ("mqa", 160, 64, 3, 4, 2, 1), ("uir", 160, 640, 3, 0, 1), ("mqa", 160, 64, 3, 4, 2, 1),
    ("uir", 160, 640, 3, 3, 1), ("mqa", 160, 64, 3, 4, 2, 1), ("uir", 160, 640, 3, 0, 1),
    ("uir", 256, 960, 5, 5, 2), ("uir", 256, 1024, 5, 5, 1), ("uir", 256, 1024, 3, 5, 1),
    ("uir", 256, 1024, 3, 5, 1), ("uir", 256, 512, 0, 0, 1), ("uir", 256, 512, 3, 5, 1),
    ("uir", 256, 512, 0, 0, 1), ("uir", 256, 1024, 0, 0, 1), ("mqa", 256, 64, 3, 4, 1, 1),
    ("uir", 256, 1024, 3, 0, 1), ("mqa", 256, 64, 3, 4, 1, 1), ("uir", 256, 1024, 5, 5, 1),
    ("mqa", 256, 64, 3, 4, 1, 1), ("uir", 256, 1024, 5, 0, 1), ("mqa", 256, 64, 3, 4, 1, 1),
    ("uir", 256, 1024, 5, 0, 1),
    ("conv", 960, 1, 1),
)  # fmt: skip
HYBRID_LARGE: tuple[BlockSpec, ...] = (
    ("er", 48, 96, 3, 2),
    ("uir", 96, 192, 3, 5, 2), ("uir", 96, 384, 3, 3, 1),
    ("uir", 192, 384, 3, 5, 2), ("uir", 192, 768, 3, 3, 1), ("uir", 192, 768, 3, 3, 1),
    ("uir", 192, 768, 3, 3, 1), ("uir", 192, 768, 3, 5, 1), ("uir", 192, 768, 5, 3, 1),
    ("uir", 192, 768, 5, 3, 1), ("mqa", 192, 48, 3, 8, 2, 1), ("uir", 192, 768, 5, 3, 1),
    ("mqa", 192, 48, 3, 8, 2, 1), ("uir", 192, 768, 5, 3, 1), ("mqa", 192, 48, 3, 8, 2, 1),
    ("uir", 192, 768, 5, 3, 1), ("mqa", 192, 48, 3, 8, 2, 1), ("uir", 192, 768, 3, 0, 1),
    ("uir", 512, 768, 5, 5, 2), ("uir", 512, 2048, 5, 5, 1), ("uir", 512, 2048, 5, 5, 1),
    ("uir", 512, 2048, 5, 5, 1), ("uir", 512, 2048, 5, 0, 1), ("uir", 512, 2048, 5, 3, 1),
    ("uir", 512, 2048, 5, 0, 1), ("uir", 512, 2048, 5, 0, 1), ("uir", 512, 2048, 5, 3, 1),
    ("uir", 512, 2048, 5, 5, 1), ("mqa", 512, 64, 3, 8, 1, 1), ("uir", 512, 2048, 5, 0, 1),
    ("mqa", 512, 64, 3, 8, 1, 1), ("uir", 512, 2048, 5, 0, 1), ("mqa", 512, 64, 3, 8, 1, 1),
    ("uir", 512, 2048, 5, 0, 1), ("mqa", 512, 64, 3, 8, 1, 1), ("uir", 512, 2048, 5, 0, 1),
    ("conv", 960, 1, 1),
)  # fmt: skip


#: the block tables by the name PaddleClas gives them
ARCHS: dict[str, tuple[BlockSpec, ...]] = {
    "conv_small": CONV_SMALL,
    "conv_medium": CONV_MEDIUM,
    "conv_large": CONV_LARGE,
    "hybrid_medium": HYBRID_MEDIUM,
    "hybrid_large": HYBRID_LARGE,
}


def _stage_ends(blocks: tuple[BlockSpec, ...]) -> list[int]:
    """The last block of each stage (PaddleClas's stage patterns): the block before each
    later stride-2 block, then the last bottleneck and the final 1x1 conv on their own."""
    halving = [i for i, spec in enumerate(blocks) if i > 0 and spec[-1] == 2]
    return [i - 1 for i in halving] + [len(blocks) - 2, len(blocks) - 1]


class MobileNetV4(Backbone):
    """MobileNetV4: stem ``conv_stem`` (3x3 at stride 2), the ``blocks`` (conv, edge residual,
    universal inverted bottleneck and, in the hybrid variants, mobile attention blocks),
    global pooling, a 1x1 conv-BN-act ``conv_head`` to ``class_expand`` channels, dropout
    (``drop_rate``) and the classifier ``classifier``. ``arch`` names the block table
    (:data:`ARCHS`).

    ``drop_path_rate``: stochastic depth of the residual blocks, rising linearly with depth
    (PaddleClas also drops the output of the plain conv blocks, which have no shortcut;
    corolla does not). ``use_fused_attn``: see :class:`MobileAttention`.
    The blocks form 5 stages (PaddleClas's stage patterns); ``lr_mult_list`` has 6 values
    (the stem, then each stage; the head keeps the base rate), ``return_stages`` picks 0-4.
    """

    def __init__(
        self,
        *,
        arch: str,
        stem_channels: int,
        act: str,
        layer_scale_init: float,
        class_expand: int = 1280,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        use_fused_attn: bool = False,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        check_rates(name, drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        check_positive_int(name, "class_expand", class_expand)

        blocks = ARCHS[arch]
        self.conv_stem = ConvBN(3, stem_channels, 3, stride=2, act=act)
        layers = []
        in_channels = stem_channels
        for i, (kind, out, *spec) in enumerate(blocks):
            rate = drop_path_rate * i / len(blocks)
            if kind == "conv":
                kernel, stride = spec
                layers.append(ConvBN(in_channels, out, kernel, stride=stride, act=act))
            elif kind == "er":
                mid, kernel, stride = spec
                layers.append(
                    EdgeResidual(in_channels, out, mid_channels=mid, kernel_size=kernel, stride=stride, act=act, drop_path_rate=rate)
                )
            elif kind == "uir":
                mid, start, middle, stride = spec
                layers.append(
                    UniversalInvertedResidual(
                        in_channels, out, mid_channels=mid, start_kernel=start, mid_kernel=middle, stride=stride,
                        act=act, layer_scale_init=layer_scale_init, drop_path_rate=rate,
                    )
                )
            else:
                kv_dim, kernel, heads, kv_stride, stride = spec
                layers.append(
                    MobileAttention(
                        in_channels, out, kv_dim=kv_dim, kernel_size=kernel, heads=heads, kv_stride=kv_stride,
                        stride=stride, layer_scale_init=layer_scale_init, drop_path_rate=rate, use_fused_attn=use_fused_attn,
                    )
                )
            in_channels = out
        self.blocks = nn.Sequential(*layers)

        self.global_pool = nn.AdaptiveAvgPool2D(1)
        self.conv_head = ConvBN(in_channels, class_expand, 1, act=act)
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.dropout = nn.Dropout(drop_rate) if drop_rate else None
        self.classifier = nn.Linear(class_expand, self.class_num)

        exempt_norms_from_decay(self)
        ends = _stage_ends(blocks)
        stages = split_stages(layers, ends)
        self.finish(
            lr_groups={"stem": [self.conv_stem], **{f"stage{i}": stage for i, stage in enumerate(stages)}},
            stages=[stage[-1] for stage in stages],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.blocks(self.conv_stem(x))
        x = self.flatten(self.conv_head(self.global_pool(x)))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.classifier(x)


# --- pretrained weights (PaddleClas 2.6 model zoo, converted from the official ones; top-1 and
# evaluation sizes from its MobileNetV4 docs and configs) ----------------------------------------

_URL = MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams"
WEIGHTS = (
    weights_table(_URL, {"MobileNetV4_conv_small": 0.746, "MobileNetV4_hybrid_medium": 0.805}, input_size=256)
    | weights_table(_URL, {"MobileNetV4_conv_medium": 0.799}, input_size=320)
    | weights_table(_URL, {"MobileNetV4_conv_large": 0.834, "MobileNetV4_hybrid_large": 0.838}, input_size=448)
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "MobileNetV4_conv_small": dict(arch="conv_small", stem_channels=32, act="relu", layer_scale_init=0.0),
    "MobileNetV4_conv_medium": dict(arch="conv_medium", stem_channels=32, act="relu", layer_scale_init=0.0),
    "MobileNetV4_conv_large": dict(arch="conv_large", stem_channels=24, act="relu", layer_scale_init=0.0),
    "MobileNetV4_hybrid_medium": dict(arch="hybrid_medium", stem_channels=32, act="relu", layer_scale_init=1e-5),
    "MobileNetV4_hybrid_large": dict(arch="hybrid_large", stem_channels=24, act="gelu", layer_scale_init=1e-5),
}

BUILDERS = builders(MobileNetV4, VARIANTS, WEIGHTS)
