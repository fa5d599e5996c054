"""Swin Transformer V2 (Liu et al. 2021, https://arxiv.org/abs/2111.09883), weight-compatible with
PaddleClas 2.6's ``SwinTransformerV2_*`` (model_zoo/swin_transformer_v2.py).

V2 changes V1's block: scaled cosine attention with a learned temperature per head, a relative
position bias from a small MLP over log-spaced offsets (continuous, so windows may differ from
pre-training: ``pretrained_window_sizes``), and LayerNorms after (not before) attention and MLP.

PaddleClas 2.6's own V2 builds, but its forward raises ``NameError`` (an unfinished change to
variable input sizes); this one computes what its published weights were converted for (the
official model, PaddleClas's earlier release): fixed input size, shifted-window masks fixed per
block, and no window larger than its feature map (there the window shrinks and does not shift).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, ComponentArgumentError, weights_table
from corolla.plugins.backbones._base import Backbone, builders, native_input_size
from corolla.plugins.backbones._checks import check_input_size, check_rate
from corolla.plugins.backbones._init import TRUNC_NORMAL, init_transformer_weights
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates
from corolla.plugins.backbones._tokens import (
    relative_position_index,
    shifted_window_mask,
    window_merge,
    window_partition,
)
from corolla.plugins.backbones._transformer import Mlp, PatchEmbed

#: the largest attention temperature: logits are at most 100x the cosine similarity
MAX_LOGIT_SCALE = math.log(100.0)

# --- building blocks -----------------------------------------------------------------------


def log_spaced_offsets(window: int, pretrained_window: int) -> np.ndarray:
    """``[1, 2w - 1, 2w - 1, 2]`` float32: every relative (row, column) offset in a window,
    scaled to [-8, 8] by the pre-training window (or this one, where ``pretrained_window`` is 0),
    then log-spaced: ``sign(t) * log2(1 + |t|) / 3``. The input of the position-bias MLP."""
    offsets = np.arange(-(window - 1), window, dtype=np.float32)
    table = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1)[None]
    table = table / np.float32((pretrained_window or window) - 1) * 8
    return (np.sign(table) * np.log2(np.abs(table) + 1.0) / np.log2(8)).astype(np.float32)


class WindowAttentionV2(nn.Layer):
    """Scaled cosine attention inside windows: cosine similarity of queries and keys times a
    learned per-head temperature (``logit_scale``), plus ``16 * sigmoid`` of a relative position
    bias that an MLP (``cpb_mlp``) computes from :func:`log_spaced_offsets` (``relative_coords_table``).
    The qkv projection has a query and a value bias (``q_bias``, ``v_bias``) but no key bias."""

    def __init__(
        self, dim: int, window: int, num_heads: int, *, pretrained_window: int, attn_drop: float, proj_drop: float
    ) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.logit_scale = self.create_parameter(
            [num_heads, 1, 1], default_initializer=nn.initializer.Constant(math.log(10.0))
        )
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(), nn.Linear(512, num_heads, bias_attr=False))
        self.register_buffer("relative_coords_table", paddle.to_tensor(log_spaced_offsets(window, pretrained_window)))
        self.register_buffer("relative_position_index", paddle.to_tensor(relative_position_index(window)))
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=False)
        zeros = nn.initializer.Constant(0.0)
        self.q_bias = self.create_parameter([dim], default_initializer=zeros)
        self.v_bias = self.create_parameter([dim], default_initializer=zeros)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def relative_position_bias(self) -> paddle.Tensor:
        """``[1, heads, window², window²]``, in (0, 16)."""
        tokens = self.window * self.window
        table = self.cpb_mlp(self.relative_coords_table).reshape([-1, self.num_heads])
        bias = paddle.index_select(table, self.relative_position_index.reshape([-1]))
        bias = bias.reshape([tokens, tokens, self.num_heads]).transpose([2, 0, 1])
        return 16 * nn.functional.sigmoid(bias).unsqueeze(0)

    def forward(self, x: paddle.Tensor, mask: paddle.Tensor | None = None) -> paddle.Tensor:
        """``x``: ``[N * windows, window², C]``; ``mask``: ``[windows, window², window²]`` or None."""
        tokens, dim = x.shape[1], x.shape[2]
        bias = paddle.concat([self.q_bias, paddle.zeros_like(self.v_bias), self.v_bias])
        qkv = nn.functional.linear(x, self.qkv.weight, bias).reshape([-1, tokens, 3, self.num_heads, dim // self.num_heads])
        q, k, v = qkv.transpose([2, 0, 3, 1, 4]).unbind(0)
        cosine = paddle.matmul(nn.functional.normalize(q, axis=-1), nn.functional.normalize(k, axis=-1), transpose_y=True)
        attn = cosine * paddle.clip(self.logit_scale, max=MAX_LOGIT_SCALE).exp() + self.relative_position_bias()
        if mask is not None:
            shape = [-1, mask.shape[0], self.num_heads, tokens, tokens]
            attn = (attn.reshape(shape) + mask.unsqueeze(1).unsqueeze(0)).reshape([-1, self.num_heads, tokens, tokens])
        attn = self.attn_drop(nn.functional.softmax(attn, axis=-1))
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([-1, tokens, dim])
        return self.proj_drop(self.proj(x))


class SwinBlockV2(nn.Layer):
    """Window attention (shifted by ``shift`` when non-zero), then an MLP of 4x width, each
    followed by its LayerNorm (``norm1``, ``norm2``) and added to the input. A window no
    smaller than the ``resolution`` x ``resolution`` feature map shrinks to it and does not shift."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        resolution: int,
        window: int,
        shift: int,
        pretrained_window: int,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        self.dim = dim
        self.resolution = resolution
        self.window = window
        self.shift = shift
        self.attn = WindowAttentionV2(
            dim, window, num_heads, pretrained_window=pretrained_window, attn_drop=attn_drop, proj_drop=drop
        )
        self.norm1 = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path)
        self.mlp = Mlp(dim, 4 * dim, drop=drop)
        self.norm2 = nn.LayerNorm(dim)
        # PaddleClas 2.6 keeps an unused zero buffer of this name and shape in every block: kept,
        # so that state dicts match
        self.register_buffer("attn_mask", paddle.zeros([1, resolution, resolution, 1]))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        size = self.resolution
        shortcut = x
        x = x.reshape([-1, size, size, self.dim])
        mask = None
        if self.shift:
            x = paddle.roll(x, shifts=(-self.shift, -self.shift), axis=(1, 2))
            mask = paddle.to_tensor(shifted_window_mask(size, size, self.window, self.shift), dtype=x.dtype)
        x = window_merge(self.attn(window_partition(x, self.window), mask), self.window, size, size)
        if self.shift:
            x = paddle.roll(x, shifts=(self.shift, self.shift), axis=(1, 2))
        x = shortcut + self.drop_path(self.norm1(x.reshape([-1, size * size, self.dim])))
        return x + self.drop_path(self.norm2(self.mlp(x)))


class PatchMergingV2(nn.Layer):
    """Halve the resolution: concatenate each 2x2 neighbourhood, a linear map from 4C to 2C
    channels (``reduction``), then LayerNorm (``norm``)."""

    def __init__(self, dim: int, resolution: int) -> None:
        super().__init__()
        self.dim = dim
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias_attr=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x.reshape([-1, self.resolution, self.resolution, self.dim])
        # the order of the four neighbours is part of the weights' meaning
        x = paddle.concat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
        x = x.reshape([-1, (self.resolution // 2) ** 2, 4 * self.dim])
        return self.norm(self.reduction(x))


class SwinStageV2(nn.Layer):
    """``blocks`` (unshifted and shifted alternately), then ``downsample`` except in the last stage."""

    def __init__(
        self, dim: int, depth: int, *, resolution: int, window: int, drop_paths: list[float], downsample: bool, **block: Any
    ) -> None:
        super().__init__()
        self.blocks = nn.LayerList(
            SwinBlockV2(
                dim, resolution=resolution, window=window, shift=0 if i % 2 == 0 else window // 2,
                drop_path=drop_paths[i], **block,
            )
            for i in range(depth)
        )
        self.downsample = PatchMergingV2(dim, resolution) if downsample else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


# --- the model -----------------------------------------------------------------------------


class SwinTransformerV2(Backbone):
    """Swin Transformer V2: ``patch_embed`` (4x4 patches, LayerNorm), four stages ``layers.0-3``
    with a patch merging after each of the first three, a final LayerNorm (``norm``), global
    average pooling and the classifier ``head``. Takes ``img_size`` square images only.

    ``pretrained_window_sizes``: per stage, the window of the weights' pre-training (0: this
    model's own), which scales the position-bias MLP's input (fine-tuning to larger windows);
    ``drop_rate``: dropout after the patch embedding and in each block; ``attn_drop_rate``:
    dropout of the attention weights; ``ape``: learned absolute position embeddings
    (``absolute_pos_embed``); ``patch_norm``: the LayerNorm of the patch embedding.
    ``lr_mult_list`` has 5 values: the patch embedding, then each stage (with its patch
    merging); ``return_stages`` gives each stage's tokens before its patch merging,
    ``[N, H * W, C]`` at strides 4, 8, 16, 32.
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
        pretrained_window_sizes: Sequence[int] = (0, 0, 0, 0),
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        ape: bool = False,
        patch_norm: bool = True,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        for key, value in (("drop_rate", drop_rate), ("attn_drop_rate", attn_drop_rate)):
            check_rate(self.model_name, key, value)
        pretrained_windows = _check_pretrained_windows(self.model_name, pretrained_window_sizes, len(depths))

        patch_size = 4
        self.img_size = img_size
        resolution = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim, norm=patch_norm)
        self.absolute_pos_embed = None
        if ape:
            self.absolute_pos_embed = self.create_parameter([1, resolution**2, embed_dim], default_initializer=TRUNC_NORMAL)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = drop_path_rates(drop_path_rate, sum(depths))
        self.layers = nn.LayerList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            first = sum(depths[:i])
            self.layers.append(
                SwinStageV2(
                    embed_dim * 2**i, depth, resolution=resolution // 2**i, window=window_size,
                    drop_paths=rates[first : first + depth], downsample=i < len(depths) - 1, num_heads=heads,
                    pretrained_window=pretrained_windows[i], drop=drop_rate, attn_drop=attn_drop_rate,
                )
            )
        features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(features)
        self.head = nn.Linear(features, self.class_num)

        init_transformer_weights(self)
        groups = {"patch_embed": [self.patch_embed], **{f"stage{i}": [stage] for i, stage in enumerate(self.layers)}}
        self.finish(lr_groups=groups, stages=[stage.blocks[-1] for stage in self.layers])
        if self.absolute_pos_embed is not None:  # a parameter of the model itself, so not in a group's layers
            self.absolute_pos_embed.optimize_attr["learning_rate"] = self.lr_mult_list[0]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        check_input_size(self.model_name, x, self.img_size, "windows and masks")
        x, _ = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        for stage in self.layers:
            x = stage(x)
        return self.head(self.norm(x).mean(axis=1))


def _check_pretrained_windows(name: str, sizes: Sequence[int], stages: int) -> list[int]:
    if (
        not isinstance(sizes, (list, tuple))
        or len(sizes) != stages
        or not all(isinstance(s, int) and not isinstance(s, bool) and (s == 0 or s > 1) for s in sizes)
    ):
        raise ComponentArgumentError(
            f"{name}: pretrained_window_sizes needs {stages} window sizes, each 0 (this model's own) or more than 1; "
            f"got {sizes!r}"
        )
    return list(sizes)


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its Swin Transformer V2 docs) ---------
# PaddleClas loads the ImageNet-22k-then-1k weights of the window24 and large models by default,
# and so does corolla.

_URL = MODEL_ZOO_URL + "{}_pretrained.pdparams"
_URL_22KTO1K = MODEL_ZOO_URL + "{}_22kto1k_pretrained.pdparams"

WEIGHTS = (
    weights_table(
        _URL,
        {
            "SwinTransformerV2_tiny_patch4_window8_256": 0.8177,
            "SwinTransformerV2_tiny_patch4_window16_256": 0.8283,
            "SwinTransformerV2_small_patch4_window8_256": 0.8373,
            "SwinTransformerV2_small_patch4_window16_256": 0.8414,
            "SwinTransformerV2_base_patch4_window8_256": 0.8419,
            "SwinTransformerV2_base_patch4_window16_256": 0.8458,
        },
        input_size=256,
    )
    | weights_table(_URL_22KTO1K, {"SwinTransformerV2_large_patch4_window16_256": 0.8689}, input_size=256)
    | weights_table(
        _URL_22KTO1K,
        {"SwinTransformerV2_base_patch4_window24_384": 0.8714, "SwinTransformerV2_large_patch4_window24_384": 0.8747},
        input_size=384,
    )
)

# --- registered names ---------------------------------------------------------------------------

_TINY = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2)
_SMALL = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.3)
_BASE = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.5)
_LARGE = dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), drop_path_rate=0.2)
_BASE_22K = dict(_BASE, drop_path_rate=0.2)
_WINDOWS_22K = dict(pretrained_window_sizes=(12, 12, 12, 6))

VARIANTS = {
    "SwinTransformerV2_tiny_patch4_window8_256": dict(img_size=256, window_size=8, **_TINY),
    "SwinTransformerV2_tiny_patch4_window16_256": dict(img_size=256, window_size=16, **_TINY),
    "SwinTransformerV2_small_patch4_window8_256": dict(img_size=256, window_size=8, **_SMALL),
    "SwinTransformerV2_small_patch4_window16_256": dict(img_size=256, window_size=16, **_SMALL),
    "SwinTransformerV2_base_patch4_window8_256": dict(img_size=256, window_size=8, **_BASE),
    "SwinTransformerV2_base_patch4_window16_256": dict(img_size=256, window_size=16, **_BASE),
    "SwinTransformerV2_base_patch4_window24_384": dict(img_size=384, window_size=24, **_BASE_22K, **_WINDOWS_22K),
    "SwinTransformerV2_large_patch4_window16_256": dict(img_size=256, window_size=16, **_LARGE, **_WINDOWS_22K),
    "SwinTransformerV2_large_patch4_window24_384": dict(img_size=384, window_size=24, **_LARGE, **_WINDOWS_22K),
}

#: windows and shift masks fix each variant's input size
MIN_INPUT_SIZE = native_input_size(VARIANTS)

BUILDERS = builders(SwinTransformerV2, VARIANTS, WEIGHTS)
