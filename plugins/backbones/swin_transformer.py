"""Swin Transformer (Liu et al. 2021, https://arxiv.org/abs/2103.14030): a hierarchical vision
transformer with attention in shifted local windows, weight-compatible with PaddleClas 2.6's
``SwinTransformer_*`` (legendary_models/swin_transformer.py).

As PaddleClas 2.6 does, the model takes any input size: the image is padded to whole patches and
each feature map to whole windows (and to even sizes before each patch merging), and every
second block attends in windows shifted by half a window, also where the map is no larger than
one window.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, native_input_size
from corolla.plugins.backbones._checks import check_rate
from corolla.plugins.backbones._init import TRUNC_NORMAL, init_transformer_weights
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._tokens import (
    relative_position_index,
    shifted_window_mask,
    window_merge,
    window_partition,
)
from corolla.plugins.backbones._transformer import Mlp, PatchEmbed

# --- building blocks -----------------------------------------------------------------------


def fused_ops_supported() -> bool:
    """Whether this device runs Paddle's fused attention and fused linear kernels (an NVIDIA
    GPU of compute capability 8 or more, where PaddleClas enables them)."""
    return (
        paddle.is_compiled_with_cuda()
        and paddle.device.cuda.device_count() > 0
        and paddle.device.cuda.get_device_capability()[0] >= 8
    )


def padding_to_multiple(height: int, width: int, size: int) -> tuple[int, int]:
    """Bottom and right padding that PaddleClas 2.6 gives a ``height`` x ``width`` map so that
    both sides are multiples of ``size``. Where only one side is not, PaddleClas pads the
    other by a whole ``size`` as well; kept, so that outputs match PaddleClas's."""
    if height % size == 0 and width % size == 0:
        return 0, 0
    return size - height % size, size - width % size


def _pad_nhwc(x: paddle.Tensor, bottom: int, right: int) -> paddle.Tensor:
    return nn.functional.pad(x, [0, 0, 0, bottom, 0, right, 0, 0]) if bottom or right else x


class WindowAttention(nn.Layer):
    """Multi-head self-attention inside ``window`` x ``window`` windows with a learned bias per
    relative position and head (``relative_position_bias_table``, indexed by the
    ``relative_position_index`` buffer)."""

    def __init__(
        self,
        dim: int,
        window: int,
        num_heads: int,
        *,
        attn_drop: float,
        proj_drop: float,
        linear: Callable[..., nn.Layer],
        fused: bool,
    ) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5  # also the fused kernel's own scale
        self.fused = fused
        self.relative_position_bias_table = self.create_parameter(
            [(2 * window - 1) ** 2, num_heads], default_initializer=TRUNC_NORMAL
        )
        self.register_buffer("relative_position_index", paddle.to_tensor(relative_position_index(window)))
        self.qkv = linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def relative_position_bias(self) -> paddle.Tensor:
        """``[1, heads, window², window²]``."""
        tokens = self.window * self.window
        bias = paddle.index_select(self.relative_position_bias_table, self.relative_position_index.reshape([-1]))
        return bias.reshape([tokens, tokens, self.num_heads]).transpose([2, 0, 1]).unsqueeze(0)

    def forward(self, x: paddle.Tensor, mask: paddle.Tensor | None = None) -> paddle.Tensor:
        """``x``: ``[N * windows, window², C]``; ``mask``: ``[windows, window², window²]`` or None."""
        tokens, dim = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape([-1, tokens, 3, self.num_heads, dim // self.num_heads])
        bias = self.relative_position_bias()
        if self.fused:
            q, k, v = qkv.transpose([2, 0, 1, 3, 4]).unbind(0)  # [B, t, heads, d] each
            if mask is not None:  # windows are ordered image by image: tile the mask over the images
                bias = (bias.unsqueeze(1) + mask.unsqueeze(1).unsqueeze(0)).tile([x.shape[0] // mask.shape[0], 1, 1, 1, 1])
                bias = bias.reshape([-1, self.num_heads, tokens, tokens])
            x = nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.expand([x.shape[0], -1, -1, -1]),
                dropout_p=self.attn_drop.p if self.training else 0.0, training=self.training,
            )
        else:
            q, k, v = qkv.transpose([2, 0, 3, 1, 4]).unbind(0)  # [B, heads, t, d] each
            attn = paddle.matmul(q * self.scale, k, transpose_y=True) + bias
            if mask is not None:
                shape = [-1, mask.shape[0], self.num_heads, tokens, tokens]
                attn = (attn.reshape(shape) + mask.unsqueeze(1).unsqueeze(0)).reshape([-1, self.num_heads, tokens, tokens])
            attn = nn.functional.softmax(attn, axis=-1)
            x = paddle.matmul(self.attn_drop(attn), v).transpose([0, 2, 1, 3])
        return self.proj_drop(self.proj(x.reshape([-1, tokens, dim])))


class SwinBlock(nn.Layer):
    """Window attention (shifted by ``shift`` when non-zero), then an MLP of 4x width; pre-norm,
    residual."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        window: int,
        shift: int,
        drop: float,
        attn_drop: float,
        drop_path: float,
        linear: Callable[..., nn.Layer],
        fused: bool,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim, window, num_heads, attn_drop=attn_drop, proj_drop=drop, linear=linear, fused=fused
        )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim, drop=drop, linear=linear)

    def forward(self, x: paddle.Tensor, size: tuple[int, int]) -> paddle.Tensor:
        height, width = size
        shortcut = x
        x = self.norm1(x).reshape([-1, height, width, self.dim])
        bottom, right = padding_to_multiple(height, width, self.window)
        x = _pad_nhwc(x, bottom, right)
        padded = (height + bottom, width + right)
        mask = None
        if self.shift:
            x = paddle.roll(x, shifts=(-self.shift, -self.shift), axis=(1, 2))
            mask = paddle.to_tensor(shifted_window_mask(*padded, self.window, self.shift), dtype=x.dtype)
        x = window_merge(self.attn(window_partition(x, self.window), mask), self.window, *padded)
        if self.shift:
            x = paddle.roll(x, shifts=(self.shift, self.shift), axis=(1, 2))
        if bottom or right:
            x = x[:, :height, :width, :]
        x = shortcut + self.drop_path(x.reshape([-1, height * width, self.dim]))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Layer):
    """Halve the resolution: concatenate each 2x2 neighbourhood (padding odd sides), LayerNorm
    (``norm``), then a linear map from 4C to 2C channels (``reduction``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias_attr=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: paddle.Tensor, size: tuple[int, int]) -> paddle.Tensor:
        height, width = size
        x = _pad_nhwc(x.reshape([-1, height, width, self.dim]), height % 2, width % 2)
        # the order of the four neighbours is part of the weights' meaning
        x = paddle.concat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
        x = x.reshape([-1, ((height + 1) // 2) * ((width + 1) // 2), 4 * self.dim])
        return self.reduction(self.norm(x))


class SwinStage(nn.Layer):
    """``blocks`` (unshifted and shifted alternately), then ``downsample`` (a
    :class:`PatchMerging`) except in the last stage."""

    def __init__(self, dim: int, depth: int, *, window: int, drop_paths: list[float], downsample: bool, **block: Any) -> None:
        super().__init__()
        self.blocks = nn.LayerList(
            SwinBlock(dim, window=window, shift=0 if i % 2 == 0 else window // 2, drop_path=drop_paths[i], **block)
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: paddle.Tensor, size: tuple[int, int]) -> tuple[paddle.Tensor, tuple[int, int]]:
        for block in self.blocks:
            x = block(x, size)
        if self.downsample is not None:
            x = self.downsample(x, size)
            size = ((size[0] + 1) // 2, (size[1] + 1) // 2)
        return x, size


# --- the model -----------------------------------------------------------------------------


class SwinTransformer(Backbone):
    """Swin Transformer: ``patch_embed`` (4x4 patches, LayerNorm), four stages ``layers.0-3``
    of window-attention blocks with a patch merging after each of the first three, a final
    LayerNorm (``norm``), global average pooling and the classifier ``head``.

    ``drop_rate``: dropout after the patch embedding and in each block; ``attn_drop_rate``:
    dropout of the attention weights; ``ape``: add learned absolute position embeddings
    (``absolute_pos_embed``, for ``img_size`` inputs only); ``patch_norm``: the LayerNorm of the
    patch embedding; ``use_fused_attn`` / ``use_fused_linear``: Paddle's fused attention and
    fused linear kernels (same maths; only on NVIDIA GPUs of compute capability 8 or more,
    elsewhere a warning and the plain layers). ``lr_mult_list`` has 5 values: the patch
    embedding, then each stage (with its patch merging); ``return_stages`` gives each stage's
    tokens before its patch merging, ``[N, H * W, C]`` at strides 4, 8, 16, 32.
    """

    def __init__(
        self,
        *,
        img_size: int,
        embed_dim: int,
        depths: tuple[int, int, int, int],
        num_heads: tuple[int, int, int, int],
        window_size: int,
        drop_path_rate: float,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        ape: bool = False,
        patch_norm: bool = True,
        use_fused_attn: bool = False,
        use_fused_linear: bool = False,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        for key, value in (("drop_rate", drop_rate), ("attn_drop_rate", attn_drop_rate)):
            check_rate(name, key, value)
        use_fused_attn, use_fused_linear = _fused_ops(name, use_fused_attn, use_fused_linear)
        linear = paddle.incubate.nn.FusedLinear if use_fused_linear else nn.Linear

        patch_size = 4
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim, norm=patch_norm)
        self.absolute_pos_embed = None
        if ape:
            patches = (img_size // patch_size) ** 2
            self.absolute_pos_embed = self.create_parameter([1, patches, embed_dim], default_initializer=TRUNC_NORMAL)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = drop_path_rates(drop_path_rate, sum(depths))
        self.layers = nn.LayerList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            first = sum(depths[:i])
            self.layers.append(
                SwinStage(
                    embed_dim * 2**i, depth, window=window_size, drop_paths=rates[first : first + depth],
                    downsample=i < len(depths) - 1, num_heads=heads, drop=drop_rate, attn_drop=attn_drop_rate,
                    linear=linear, fused=use_fused_attn,
                )
            )
        features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(features)
        self.head = linear(features, self.class_num)

        init_transformer_weights(self, (nn.Linear, paddle.incubate.nn.FusedLinear))
        groups = {"patch_embed": [self.patch_embed], **{f"stage{i}": [stage] for i, stage in enumerate(self.layers)}}
        self.finish(lr_groups=groups, stages=[stage.blocks[-1] for stage in self.layers])
        if self.absolute_pos_embed is not None:  # a parameter of the model itself, so not in a group's layers
            self.absolute_pos_embed.optimize_attr["learning_rate"] = self.lr_mult_list[0]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        bottom, right = padding_to_multiple(x.shape[2], x.shape[3], self.patch_embed.patch_size)
        if bottom or right:
            x = nn.functional.pad(x, [0, 0, 0, 0, 0, bottom, 0, right])
        x, size = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        for stage in self.layers:
            x, size = stage(x, size)
        x = self.norm(x).mean(axis=1)
        return self.head(x)


def _fused_ops(name: str, use_fused_attn: bool, use_fused_linear: bool) -> tuple[bool, bool]:
    """The fused kernels asked for, less those this device lacks (with a warning, as PaddleClas)."""
    if (use_fused_attn or use_fused_linear) and not fused_ops_supported():
        warnings.warn(f"{name}: this device has no fused attention/linear kernels; using the plain layers", stacklevel=3)
        return False, False
    return use_fused_attn, use_fused_linear


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its Swin Transformer docs) ------------
# PaddleClas's large models load their ImageNet-22k-then-1k weights by default, and so does corolla.

_URL = MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams"
_URL_22KTO1K = MODEL_ZOO_URL + "legendary_models/{}_22kto1k_pretrained.pdparams"

WEIGHTS = (
    weights_table(
        _URL,
        {
            "SwinTransformer_tiny_patch4_window7_224": 0.8069,
            "SwinTransformer_small_patch4_window7_224": 0.8275,
            "SwinTransformer_base_patch4_window7_224": 0.8300,
        },
    )
    | weights_table(_URL, {"SwinTransformer_base_patch4_window12_384": 0.8439}, input_size=384)
    | weights_table(_URL_22KTO1K, {"SwinTransformer_large_patch4_window7_224": 0.8596})
    | weights_table(_URL_22KTO1K, {"SwinTransformer_large_patch4_window12_384": 0.8719}, input_size=384)
)

# --- registered names ---------------------------------------------------------------------------

_TINY = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
_SMALL = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24))
_BASE = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
_LARGE = dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48))

VARIANTS = {
    "SwinTransformer_tiny_patch4_window7_224": dict(img_size=224, window_size=7, drop_path_rate=0.2, **_TINY),
    "SwinTransformer_small_patch4_window7_224": dict(img_size=224, window_size=7, drop_path_rate=0.3, **_SMALL),
    "SwinTransformer_base_patch4_window7_224": dict(img_size=224, window_size=7, drop_path_rate=0.5, **_BASE),
    "SwinTransformer_base_patch4_window12_384": dict(img_size=384, window_size=12, drop_path_rate=0.5, **_BASE),
    "SwinTransformer_large_patch4_window7_224": dict(img_size=224, window_size=7, drop_path_rate=0.1, **_LARGE),
    "SwinTransformer_large_patch4_window12_384": dict(img_size=384, window_size=12, drop_path_rate=0.1, **_LARGE),
}

#: the size the tests use: each variant's own (other sizes are padded to whole windows, as
#: PaddleClas does, but the weights were trained at this one)
MIN_INPUT_SIZE = native_input_size(VARIANTS)

BUILDERS = builders(SwinTransformer, VARIANTS, WEIGHTS)
