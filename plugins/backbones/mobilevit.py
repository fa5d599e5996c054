"""MobileViT (Mehta & Rastegari 2021, https://arxiv.org/abs/2110.02178): MobileNetV2 blocks
interleaved with blocks that run transformers across 2x2 patches of a feature map,
weight-compatible with PaddleClas 2.6's ``MobileViT_XXS/XS/S``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn
from paddle.nn import functional as F

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import truncated_normal
from corolla.plugins.backbones._layers import LeanBatchNorm2D
from corolla.plugins.backbones._mobilevit import ConvNormAct, from_tokens, multi_head_attention, padded_size, to_tokens

HEADS = 4
MLP_RATIO = 2
#: PaddleClas's dropout after the attention and MLP branches and before the classifier
DROPOUT = 0.1
TRANSFORMER_DEPTHS = (2, 4, 3)

# --- building blocks -----------------------------------------------------------------------


class MobileV2Block(nn.Layer):
    """MobileNetV2's inverted residual as ``conv``: 1x1 conv-BN-SiLU (absent at expansion 1),
    3x3 depthwise conv-BN-SiLU, 1x1 conv, BN; residual at stride 1 when the channels match."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, expansion: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expansion))
        layers = [ConvNormAct(in_channels, hidden)] if expansion != 1 else []
        layers += [
            ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden),
            nn.Conv2D(hidden, out_channels, 1, bias_attr=False),
            LeanBatchNorm2D(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class Attention(nn.Layer):
    """Multi-head self-attention over [B, N, C]: ``qkv`` and ``proj`` linear layers, dropout after."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_dropout = nn.Dropout(DROPOUT)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.proj_dropout(self.proj(multi_head_attention(self.qkv(x), HEADS, scale_queries=True)))


class Mlp(nn.Layer):
    """``fc1``, SiLU, dropout, ``fc2``, dropout."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * MLP_RATIO)
        self.act = nn.Silu()
        self.dropout1 = nn.Dropout(DROPOUT)
        self.fc2 = nn.Linear(dim * MLP_RATIO, dim)
        self.dropout2 = nn.Dropout(DROPOUT)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.dropout2(self.fc2(self.dropout1(self.act(self.fc1(x)))))


class EncoderLayer(nn.Layer):
    """Pre-norm transformer layer: ``attn_norm`` + ``attn`` and ``mlp_norm`` + ``mlp``, each residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Layer):
    """``depth`` :class:`EncoderLayer`\\ s (``layers``) and a final LayerNorm (``norm``)."""

    def __init__(self, dim: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.LayerList([EncoderLayer(dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, epsilon=1e-6)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class MobileViTBlock(nn.Layer):
    """3x3 conv-BN-SiLU (``conv1``) and 1x1 conv to ``dim`` (``conv2``); a :class:`Transformer`
    across 2x2 patches; 1x1 conv-BN-SiLU back (``conv3``); a 3x3 conv-BN-SiLU (``conv4``) of the
    block's input and that, together. Odd maps are resized to whole patches (bilinear) and
    back (nearest), as PaddleClas does."""

    def __init__(self, channels: int, dim: int, depth: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels, 3)
        self.conv2 = nn.Conv2D(channels, dim, 1, bias_attr=False)
        self.transformer = Transformer(dim, depth)
        self.conv3 = ConvNormAct(dim, channels)
        self.conv4 = ConvNormAct(2 * channels, channels, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.conv2(self.conv1(x))
        height, width = y.shape[2:]
        size = [padded_size(height), padded_size(width)]
        resized = size != [height, width]
        if resized:
            y = F.interpolate(y, size=size, mode="bilinear")
        y = from_tokens(self.transformer(to_tokens(y)), *size)
        if resized:
            y = F.interpolate(y, size=[height, width])
        return self.conv4(paddle.concat([x, self.conv3(y)], axis=1))


# --- the model -----------------------------------------------------------------------------


class MobileViT(Backbone):
    """MobileViT: a 3x3/2 conv-BN-SiLU stem ``conv3x3``; MobileNetV2 blocks ``mv2_block_1..4``
    (the second strided); then three times a strided ``mv2_block_5..7`` followed by a
    :class:`MobileViTBlock` ``mvit_block_1..3`` (2, 4, 3 transformer layers); a 1x1
    conv-BN-SiLU ``conv1x1``, global pooling, dropout 0.1 and ``linear``.

    ``dims``: the channels of the stem, the seven MobileNetV2 blocks and ``conv1x1``;
    ``hidden_dims``: the transformers' widths; ``expansion``: of the MobileNetV2 blocks.
    ``lr_mult_list`` has 6 values: the stem, then each stage; the stages (0-4) end at
    ``mv2_block_1``, ``mv2_block_4``, ``mvit_block_1``, ``mvit_block_2``, ``mvit_block_3``.
    """

    def __init__(
        self,
        *,
        dims: tuple[int, int, int, int, int, int, int, int, int],
        hidden_dims: tuple[int, int, int],
        expansion: int,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        self.conv3x3 = ConvNormAct(3, dims[0], 3, stride=2)
        for i in range(7):
            stride = 2 if i in (1, 4, 5, 6) else 1
            block = MobileV2Block(dims[i], dims[i + 1], stride=stride, expansion=expansion)
            self.add_sublayer(f"mv2_block_{i + 1}", block)
        for i, (channels, dim, depth) in enumerate(zip(dims[5:8], hidden_dims, TRANSFORMER_DEPTHS)):
            self.add_sublayer(f"mvit_block_{i + 1}", MobileViTBlock(channels, dim, depth))
        self.conv1x1 = ConvNormAct(dims[7], dims[8])
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(DROPOUT)
        self.linear = nn.Linear(dims[8], self.class_num)

        self._init_weights()
        layer = dict(self.named_children())
        stages = [
            [layer["mv2_block_1"]],
            [layer["mv2_block_2"], layer["mv2_block_3"], layer["mv2_block_4"]],
            [layer["mv2_block_5"], layer["mvit_block_1"]],
            [layer["mv2_block_6"], layer["mvit_block_2"]],
            [layer["mv2_block_7"], layer["mvit_block_3"]],
        ]
        self.finish(
            lr_groups={"stem": [self.conv3x3], **{f"stage{i}": stage for i, stage in enumerate(stages)}},
            stages=[stage[-1] for stage in stages],
        )

    def _init_weights(self) -> None:
        """PaddleClas's: Kaiming-uniform conv-BN-SiLU convolutions, truncated-normal (std 0.02)
        transformer linear layers with zero bias; Paddle's defaults elsewhere."""
        kaiming, linear_init, zero = nn.initializer.KaimingUniform(), truncated_normal(), nn.initializer.Constant(0.0)
        for layer in self.sublayers():
            if isinstance(layer, ConvNormAct):
                kaiming(layer.conv.weight)
            elif isinstance(layer, nn.Linear) and layer is not self.linear:
                linear_init(layer.weight)
                zero(layer.bias)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.mv2_block_1(self.conv3x3(x))
        x = self.mv2_block_4(self.mv2_block_3(self.mv2_block_2(x)))
        x = self.mvit_block_1(self.mv2_block_5(x))
        x = self.mvit_block_2(self.mv2_block_6(x))
        x = self.mvit_block_3(self.mv2_block_7(x))
        x = self.pool(self.conv1x1(x)).flatten(1)
        return self.linear(self.dropout(x))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"MobileViT_XXS": 0.6867, "MobileViT_XS": 0.7454, "MobileViT_S": 0.7814},
    input_size=256,
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "MobileViT_XXS": dict(dims=(16, 16, 24, 24, 24, 48, 64, 80, 320), hidden_dims=(64, 80, 96), expansion=2),
    "MobileViT_XS": dict(dims=(16, 32, 48, 48, 48, 64, 80, 96, 384), hidden_dims=(96, 120, 144), expansion=4),
    "MobileViT_S": dict(dims=(16, 32, 64, 64, 64, 96, 128, 160, 640), hidden_dims=(144, 192, 240), expansion=4),
}

BUILDERS = builders(MobileViT, VARIANTS, WEIGHTS)
