"""Pieces the MobileViT families (``mobilevit``, ``mobilevit_v2``, ``mobilevit_v3``) share:
SiLU conv-BN layers, MobileNetV2 blocks, cutting feature maps into 2x2 patches and back,
multi-head and separable (linear) self-attention, the five-layer skeleton of MobileViTV2/V3
with its classifier, and the initialisation PaddleClas gives them.

Parameter names follow PaddleClas 2.6 (``conv``/``norm``/``act``, ``block.exp_1x1``, ...).
"""
from __future__ import annotations

from typing import Callable, Sequence

import paddle
from paddle import nn
from paddle.nn import functional as F

from corolla.plugins.backbones._base import Backbone
from corolla.plugins.backbones._layers import LeanBatchNorm2D, make_divisible

#: the side of the square patches every MobileViT attention block works on
PATCH = 2

# --- convolutions --------------------------------------------------------------------------


class ConvNormAct(nn.Layer):
    """A bias-free convolution (``conv``), then BatchNorm (``norm``) and SiLU (``act``) where asked."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        *,
        stride: int = 1,
        groups: int = 1,
        norm: bool = True,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, groups=groups,
            bias_attr=False,
        )
        self.norm = LeanBatchNorm2D(out_channels) if norm else None
        self.act = nn.Silu() if act else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return x if self.act is None else self.act(x)


class InvertedResidual(nn.Layer):
    """MobileNetV2's block as MobileViTV2/V3 name it: ``block.exp_1x1`` (absent at expansion 1),
    ``block.conv_3x3`` (depthwise, strided), ``block.red_1x1`` (linear); residual at stride 1
    when the channels match."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = make_divisible(int(round(in_channels * expand_ratio)), 8)
        layers = [("exp_1x1", ConvNormAct(in_channels, hidden))] if expand_ratio != 1 else []
        layers += [
            ("conv_3x3", ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden)),
            ("red_1x1", ConvNormAct(hidden, out_channels, act=False)),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def mobilenet_layer(
    in_channels: int, out_channels: int, *, blocks: int, stride: int, expand_ratio: float
) -> nn.Sequential:
    """``blocks`` :class:`InvertedResidual`\\ s, the first with ``stride``."""
    first = InvertedResidual(in_channels, out_channels, stride=stride, expand_ratio=expand_ratio)
    rest = (InvertedResidual(out_channels, out_channels, stride=1, expand_ratio=expand_ratio) for _ in range(blocks - 1))
    return nn.Sequential(first, *rest)


# --- patches -------------------------------------------------------------------------------


def to_patches(x: paddle.Tensor) -> paddle.Tensor:
    """[B, C, H, W] -> [B, C, P, N]: pixel ``p`` (row-major within its 2x2 patch) of each of the
    N patches (row-major); H and W must be even."""
    batch, channels, height, width = x.shape
    x = x.reshape([batch, channels, height // PATCH, PATCH, width // PATCH, PATCH])
    return x.transpose([0, 1, 3, 5, 2, 4]).reshape([batch, channels, PATCH * PATCH, -1])


def from_patches(patches: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
    """The inverse of :func:`to_patches`: [B, C, P, N] -> [B, C, height, width]."""
    batch, channels = patches.shape[:2]
    x = patches.reshape([batch, channels, PATCH, PATCH, height // PATCH, width // PATCH])
    return x.transpose([0, 1, 4, 2, 5, 3]).reshape([batch, channels, height, width])


def to_tokens(x: paddle.Tensor) -> paddle.Tensor:
    """[B, C, H, W] -> [B * P, N, C]: one sequence of the N patches per pixel position P,
    which MobileViT's transformers attend over."""
    patches = to_patches(x)
    batch, channels, pixels, count = patches.shape
    return patches.transpose([0, 2, 3, 1]).reshape([batch * pixels, count, channels])


def from_tokens(tokens: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
    """The inverse of :func:`to_tokens`: [B * P, N, C] -> [B, C, height, width]."""
    _, count, channels = tokens.shape
    patches = tokens.reshape([-1, PATCH * PATCH, count, channels]).transpose([0, 3, 1, 2])
    return from_patches(patches, height, width)


def padded_size(size: int) -> int:
    """``size`` rounded up to whole patches (MobileViT resizes odd maps to it and back)."""
    return -(-size // PATCH) * PATCH


def check_patchable(block: str, x: paddle.Tensor) -> None:
    """MobileViTV2-style blocks cut the map into patches without resizing: say so when it is odd."""
    height, width = x.shape[2:]
    if height % PATCH or width % PATCH:
        raise ValueError(
            f"{block}: a {height}x{width} feature map does not split into {PATCH}x{PATCH} patches; "
            "use an input size that is a multiple of 64"
        )


# --- attention -----------------------------------------------------------------------------


def multi_head_attention(qkv: paddle.Tensor, heads: int, *, scale_queries: bool) -> paddle.Tensor:
    """Scaled dot-product self-attention: [B, N, 3C] (queries, keys, values) -> [B, N, C]
    (PaddleClas's MobileViTs keep no dropout on the attention weights).

    ``scale_queries``: scale the queries rather than their products with the keys (MobileViT
    does, MobileViTV3 does not); the same maths, but the rounding then matches PaddleClas's,
    which matters on tiny test inputs, where BatchNorm of 1x1 maps amplifies it.
    """
    batch, tokens, channels = qkv.shape
    head_dim = channels // 3 // heads
    parts = qkv.reshape([batch, tokens, 3, heads, head_dim]).transpose([2, 0, 3, 1, 4])
    query, key, value = parts[0], parts[1].transpose([0, 1, 3, 2]), parts[2]
    scale = head_dim**-0.5
    scores = (query * scale).matmul(key) if scale_queries else query.matmul(key) * scale
    return F.softmax(scores, axis=-1).matmul(value).transpose([0, 2, 1, 3]).reshape([batch, tokens, channels // 3])


class LinearSelfAttention(nn.Layer):
    """Separable self-attention (MobileViTV2) on [B, C, P, N]: one context score per patch
    (softmax over the N patches) weighs the keys into a context vector that gates relu(values).
    1x1 convolutions ``qkv_proj`` (to 1 + 2C channels) and ``out_proj``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.qkv_proj = nn.Conv2D(dim, 1 + 2 * dim, 1)
        self.out_proj = nn.Conv2D(dim, dim, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        query, key, value = paddle.split(self.qkv_proj(x), [1, self.dim, self.dim], axis=1)
        context = (key * F.softmax(query, axis=-1)).sum(axis=-1, keepdim=True)
        return self.out_proj(F.relu(value) * context)


class LinearAttnFFN(nn.Layer):
    """Pre-norm (GroupNorm of one group) separable attention and 1x1-conv SiLU FFN, each residual
    (``pre_norm_attn``, ``pre_norm_ffn``); ``dropout`` after each branch."""

    def __init__(self, dim: int, ffn_dim: int, *, dropout: float) -> None:
        super().__init__()
        self.pre_norm_attn = nn.Sequential(nn.GroupNorm(1, dim), LinearSelfAttention(dim), nn.Dropout(dropout))
        self.pre_norm_ffn = nn.Sequential(
            nn.GroupNorm(1, dim),
            nn.Conv2D(dim, ffn_dim, 1),
            nn.Silu(),
            nn.Dropout(0.0),  # PaddleClas's FFN dropout (always 0) keeps the next layer at index 4
            nn.Conv2D(ffn_dim, dim, 1),
            nn.Dropout(dropout),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.pre_norm_attn(x)
        return x + self.pre_norm_ffn(x)


class LinearAttentionBlock(nn.Layer):
    """MobileViTV2's block: depthwise 3x3 conv-BN-SiLU and a 1x1 conv to ``attn_dim``
    (``local_rep``), :class:`LinearAttnFFN`\\ s over 2x2 patches and a GroupNorm
    (``global_rep``), then a 1x1 conv-BN back (``conv_proj``).

    ``fuse_local`` is MobileViTV3's change: ``conv_proj`` sees the global features next to
    the local ones, and the block's input is added back.
    """

    def __init__(
        self, channels: int, attn_dim: int, *, depth: int, dropout: float = 0.0, fuse_local: bool = False
    ) -> None:
        super().__init__()
        ffn_dim = int(2 * attn_dim // 16 * 16)
        self.local_rep = nn.Sequential(
            ConvNormAct(channels, channels, 3, groups=channels),
            ConvNormAct(channels, attn_dim, norm=False, act=False),
        )
        self.global_rep = nn.Sequential(
            *(LinearAttnFFN(attn_dim, ffn_dim, dropout=dropout) for _ in range(depth)), nn.GroupNorm(1, attn_dim)
        )
        self.conv_proj = ConvNormAct(2 * attn_dim if fuse_local else attn_dim, channels, act=False)
        self.fuse_local = fuse_local

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        local = self.local_rep(x)
        check_patchable(type(self).__name__, local)
        height, width = local.shape[2:]
        global_ = from_patches(self.global_rep(to_patches(local)), height, width)
        if not self.fuse_local:
            return self.conv_proj(global_)
        return x + self.conv_proj(paddle.concat([global_, local], axis=1))


# --- the MobileViTV2/V3 skeleton -----------------------------------------------------------


class PooledClassifier(nn.Layer):
    """Global average pooling, dropout (where ``dropout`` > 0) and the linear layer ``fc``."""

    def __init__(self, in_features: int, class_num: int, *, dropout: float) -> None:
        super().__init__()
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2D(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.fc = nn.Linear(in_features, class_num)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.global_pool(x)
        return self.fc(x if self.dropout is None else self.dropout(x))


class LayeredMobileViT(Backbone):
    """The skeleton of MobileViTV2 and V3: a 3x3/2 conv-BN-SiLU ``conv_1``, five layers
    ``layer_1..layer_5`` (strides 1, 2, 2, 2, 2), an optional 1x1 ``conv_1x1_exp`` and the
    ``classifier``. ``lr_mult_list`` has 6 values: ``conv_1``, then each layer; the
    layers are the stages (0-4) of ``return_stages``."""

    def assemble(
        self, stem: nn.Layer, layers: Sequence[nn.Layer], *, expansion: nn.Layer | None, features: int, dropout: float
    ) -> None:
        """Set the layers, the classifier on ``features`` channels, and finish the contract."""
        self.conv_1 = stem
        for i, layer in enumerate(layers, start=1):
            self.add_sublayer(f"layer_{i}", layer)
        self.conv_1x1_exp = expansion
        self.classifier = PooledClassifier(features, self.class_num, dropout=dropout)
        self.finish(
            lr_groups={"stem": [stem], **{f"layer_{i}": [layer] for i, layer in enumerate(layers, start=1)}},
            stages=list(layers),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv_1(x)
        for i in range(1, 6):
            x = getattr(self, f"layer_{i}")(x)
        if self.conv_1x1_exp is not None:
            x = self.conv_1x1_exp(x)
        return self.classifier(x)


def v2_widths(width: float) -> tuple[int, list[int], list[int]]:
    """MobileViTV2's channels at width multiplier ``width``: the stem's, each layer's output,
    and the attention width of layers 3-5."""
    stem = make_divisible(max(16.0, min(64.0, 32 * width)), 8)
    outputs = [make_divisible(64 * width, 16)] + [make_divisible(c * width, 8) for c in (128, 256, 384, 512)]
    attention = [make_divisible(c * width, 8) for c in (128, 192, 256)]
    return stem, outputs, attention


def v2_layers(
    width: float, attention_block: Callable[[int, int, int], nn.Layer]
) -> tuple[nn.Layer, list[nn.Layer], int]:
    """The stem and five layers of MobileViTV2 at ``width``: two MobileNetV2 layers (1 and 2
    blocks, expansion 2), then three of a strided :class:`InvertedResidual` and
    ``attention_block(channels, attn_dim, depth)`` with 2, 4 and 3 attention blocks. Also
    returns the last layer's channels."""
    stem_channels, outputs, attention = v2_widths(width)
    stem = ConvNormAct(3, stem_channels, 3, stride=2)
    layers: list[nn.Layer] = [
        mobilenet_layer(stem_channels, outputs[0], blocks=1, stride=1, expand_ratio=2),
        mobilenet_layer(outputs[0], outputs[1], blocks=2, stride=2, expand_ratio=2),
    ]
    for in_channels, out_channels, attn_dim, depth in zip(outputs[1:], outputs[2:], attention, (2, 4, 3)):
        layers.append(
            nn.Sequential(
                InvertedResidual(in_channels, out_channels, stride=2, expand_ratio=2),
                attention_block(out_channels, attn_dim, depth),
            )
        )
    return stem, layers, outputs[-1]
