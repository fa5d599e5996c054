"""Building blocks that corolla's transformer backbones share, and the plain Vision Transformer.

Parameter names follow PaddleClas 2.6 (``qkv``, ``proj``, ``fc1``/``fc2``, ``norm1``/``norm2``,
``patch_embed.proj``), so that a family built from these blocks loads PaddleClas's ``.pdparams``.

- initialisation: :func:`init_transformer_weights`, :data:`TRUNC_NORMAL`;
- regularisation: :func:`stochastic_depth_rates`, :func:`drop_path`, :class:`DropPath`;
- layers: :class:`Mlp`, :class:`Attention`, :class:`EncoderBlock`, :class:`PatchEmbed`,
  :class:`QuickGELU`;
- token layout: :func:`tokens_to_map`, and for window attention (Swin)
  :func:`window_partition`, :func:`window_merge`, :func:`relative_position_index`,
  :func:`shifted_window_mask`;
- the model: :class:`VisionTransformer` (ViT, DeiT; with ``distilled`` the DeiT distillation token).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import numpy as np
import paddle
from paddle import nn

from corolla.api import ComponentArgumentError
from corolla.plugins.backbones._base import Backbone

#: the initialiser of PaddleClas's transformer weights and tokens
TRUNC_NORMAL = nn.initializer.TruncatedNormal(std=0.02)
_ZEROS = nn.initializer.Constant(0.0)
_ONES = nn.initializer.Constant(1.0)

# --- initialisation and regularisation ------------------------------------------------------


def init_transformer_weights(model: nn.Layer, linear_types: tuple[type, ...] = (nn.Linear,)) -> None:
    """PaddleClas's transformer initialisation: every Linear (of ``linear_types``) gets a
    truncated-normal weight (std 0.02) and a zero bias, every LayerNorm weight 1 and bias 0."""
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, linear_types):
            TRUNC_NORMAL(layer.weight)
            if layer.bias is not None:
                _ZEROS(layer.bias)
        elif isinstance(layer, nn.LayerNorm):
            _ONES(layer.weight)
            _ZEROS(layer.bias)


def stochastic_depth_rates(rate: float, count: int) -> list[float]:
    """The drop-path rate of each of ``count`` blocks: rising linearly from 0 to ``rate``."""
    return [float(r) for r in np.linspace(0.0, rate, count)]


def drop_path(x: paddle.Tensor, rate: float, training: bool) -> paddle.Tensor:
    """Stochastic depth: in training, zero each sample's residual branch with probability
    ``rate`` and scale the kept ones by ``1 / (1 - rate)``."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = paddle.floor(keep + paddle.rand([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype))
    return x / keep * mask


class DropPath(nn.Layer):
    """:func:`drop_path` as a layer (identity at rate 0 and in inference)."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return drop_path(x, self.rate, self.training)

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


# --- layers -----------------------------------------------------------------------------------


class QuickGELU(nn.Layer):
    """``x * sigmoid(1.702 x)``, the sigmoid approximation of GELU (CvT, CLIP)."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * nn.functional.sigmoid(1.702 * x)


class Mlp(nn.Layer):
    """``fc1`` -> activation -> dropout -> ``fc2`` -> dropout.

    ``act`` builds the activation (GELU by default); ``linear`` the two linear layers.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        act: Callable[[], nn.Layer] = nn.GELU,
        drop: float = 0.0,
        linear: Callable[..., nn.Layer] = nn.Linear,
    ) -> None:
        super().__init__()
        self.fc1 = linear(in_features, hidden_features)
        self.act = act()
        self.fc2 = linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class Attention(nn.Layer):
    """Multi-head self-attention over all tokens: one ``qkv`` projection, then ``proj``.

    ``scale`` multiplies the query-key products (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = False,
        scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=None if qkv_bias else False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        tokens, dim = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape([-1, tokens, 3, self.num_heads, dim // self.num_heads])
        q, k, v = qkv.transpose([2, 0, 3, 1, 4]).unbind(0)
        attn = nn.functional.softmax(paddle.matmul(q, k, transpose_y=True) * self.scale, axis=-1)
        x = paddle.matmul(self.attn_drop(attn), v).transpose([0, 2, 1, 3]).reshape([-1, tokens, dim])
        return self.proj_drop(self.proj(x))


class EncoderBlock(nn.Layer):
    """The pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``,
    each branch through stochastic depth."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        epsilon: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=epsilon)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, scale=scale, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=epsilon)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Layer):
    """Non-overlapping patches to tokens: a ``patch_size`` convolution of that stride
    (``proj``), flattened to ``[N, H * W, embed_dim]``, then a LayerNorm (``norm``) if ``norm``."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int, *, norm: bool = False) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2D(in_channels, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, tuple[int, int]]:
        """The tokens and the (height, width) of the patch grid."""
        x = self.proj(x)
        height, width = x.shape[2], x.shape[3]
        x = x.flatten(2).transpose([0, 2, 1])
        if self.norm is not None:
            x = self.norm(x)
        return x, (height, width)


# --- token layout -------------------------------------------------------------------------------


def tokens_to_map(tokens: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
    """``[N, H * W, C]`` tokens as an ``[N, C, H, W]`` feature map."""
    return tokens.transpose([0, 2, 1]).reshape([-1, tokens.shape[2], height, width])


def window_partition(x: paddle.Tensor, window: int | tuple[int, int]) -> paddle.Tensor:
    """``[N, H, W, C]`` -> ``[N * windows, wh * ww, C]``: the ``window`` (a side, or a
    ``(wh, ww)`` rectangle dividing H and W) windows in row-major order, each's tokens too."""
    wh, ww = (window, window) if isinstance(window, int) else window
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    x = x.reshape([-1, height // wh, wh, width // ww, ww, channels])
    return x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, wh * ww, channels])


def window_merge(windows: paddle.Tensor, window: int | tuple[int, int], height: int, width: int) -> paddle.Tensor:
    """The inverse of :func:`window_partition`: ``[N * windows, wh * ww, C]`` -> ``[N, H, W, C]``."""
    wh, ww = (window, window) if isinstance(window, int) else window
    channels = windows.shape[-1]
    x = windows.reshape([-1, height // wh, width // ww, wh, ww, channels])
    return x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, height, width, channels])


def relative_position_index(window: int) -> np.ndarray:
    """``[window², window²]`` int64: for each pair of positions in a window, the row of their
    relative offset in a ``(2 * window - 1)²``-row table (offsets in row-major order)."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    relative = (coords[:, :, None] - coords[:, None, :]) + (window - 1)
    return (relative[0] * (2 * window - 1) + relative[1]).astype(np.int64)


@functools.lru_cache(maxsize=64)
def shifted_window_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
    """The additive attention mask of shifted windows: ``[windows, window², window²]`` float32,
    -100 between tokens that the cyclic shift brought together from different image regions,
    else 0 (Swin Transformer). ``height`` and ``width`` are multiples of ``window``."""
    regions = np.zeros((1, height, width, 1), dtype=np.float32)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for label, (rows, cols) in enumerate((r, c) for r in bands for c in bands):
        regions[:, rows, cols, :] = label
    regions = regions.reshape(1, height // window, window, width // window, window)
    regions = regions.transpose(0, 1, 3, 2, 4).reshape(-1, window * window)
    different = regions[:, None, :] != regions[:, :, None]
    return np.where(different, np.float32(-100.0), np.float32(0.0))


# --- the Vision Transformer -------------------------------------------------------------------


class VisionTransformer(Backbone):
    """Vision Transformer (Dosovitskiy et al. 2020), and DeiT (Touvron et al. 2020) with
    ``distilled``: ``patch_embed``, a class token (``cls_token``; with ``distilled`` also a
    distillation token ``dist_token``), learned position embeddings (``pos_embed``), ``depth``
    :class:`EncoderBlock` s (``blocks``), a LayerNorm (``norm``) and the classifier ``head`` on
    the class token. A distilled model also has ``head_dist`` on the distillation token and,
    in training as in inference (as PaddleClas), returns the mean of the two heads' logits
    (PaddleClas's DeiT configs train it with CELoss on that mean).

    The input must be ``img_size`` square: the position embeddings are fixed. No stages
    and no parameter groups (``lr_mult_list`` is not supported); ``return_patterns`` can
    name ``blocks[i]``, ``head`` or ``head_dist``. ``drop_rate`` is the dropout after the
    position embeddings and in each block, ``attn_drop_rate`` that of the attention weights,
    ``drop_path_rate`` the stochastic depth of the last block (rising linearly from 0).
    """

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        epsilon: float,
        qk_scale: float | None = None,
        distilled: bool = False,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        self.model_name = contract["name"]
        for key, value in (("drop_rate", drop_rate), ("attn_drop_rate", attn_drop_rate), ("drop_path_rate", drop_path_rate)):
            check_rate(self.model_name, key, value)
        self.img_size = img_size
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        tokens = (img_size // patch_size) ** 2 + (2 if distilled else 1)
        self.pos_embed = self.create_parameter([1, tokens, embed_dim], default_initializer=TRUNC_NORMAL)
        self.cls_token = self.create_parameter([1, 1, embed_dim], default_initializer=TRUNC_NORMAL)
        self.dist_token = (
            self.create_parameter([1, 1, embed_dim], default_initializer=TRUNC_NORMAL) if distilled else None
        )
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.LayerList(
            EncoderBlock(
                embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, scale=qk_scale, drop=drop_rate,
                attn_drop=attn_drop_rate, drop_path=rate, epsilon=epsilon,
            )
            for rate in stochastic_depth_rates(drop_path_rate, depth)
        )
        self.norm = nn.LayerNorm(embed_dim, epsilon=epsilon)
        self.head = nn.Linear(embed_dim, self.class_num)
        self.head_dist = nn.Linear(embed_dim, self.class_num) if distilled else None
        init_transformer_weights(self)
        self.finish()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if x.shape[2] != self.img_size or x.shape[3] != self.img_size:
            raise ValueError(
                f"{self.model_name} takes {self.img_size}x{self.img_size} images (its position embeddings are fixed); "
                f"got {x.shape[2]}x{x.shape[3]}"
            )
        x, _ = self.patch_embed(x)
        batch = x.shape[0]
        tokens = [self.cls_token.expand([batch, -1, -1]).astype(x.dtype)]
        if self.dist_token is not None:
            tokens.append(self.dist_token.expand([batch, -1, -1]).astype(x.dtype))
        x = self.pos_drop(paddle.concat(tokens + [x], axis=1) + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        logits = self.head(x[:, 0])
        if self.head_dist is None:
            return logits
        return (logits + self.head_dist(x[:, 1])) / 2


def native_input_size(variants: Mapping[str, Mapping[str, Any]]) -> Callable[[str], int]:
    """A family's ``MIN_INPUT_SIZE``: each variant's own ``img_size``."""
    return lambda name: variants[name]["img_size"]


def check_rate(name: str, key: str, value: float) -> None:
    """A dropout or drop-path rate must lie in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ComponentArgumentError(f"{name}: {key} must be a number in [0, 1); got {value!r}")
