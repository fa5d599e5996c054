"""LeViT (Graham et al. 2021, https://arxiv.org/abs/2104.01136): a fast-inference transformer on a
convolutional stem, with BatchNorm instead of LayerNorm, learned attention biases instead of
position embeddings, and attention that subsamples between its three stages; weight-compatible
with PaddleClas 2.6's ``LeViT_128S``, ``LeViT_128``, ``LeViT_192``, ``LeViT_256``, ``LeViT_384``."""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import paddle
from paddle import nn
from paddle.nn.initializer import Constant

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._checks import check_input_size, check_rates
from corolla.plugins.backbones._init import constant_parameter, init_transformer_weights
from corolla.plugins.backbones._regularize import DropPath
from corolla.plugins.backbones._tokens import TokensToMap, map_to_tokens
from corolla.plugins.backbones._transformer import attend, merge_heads

#: the input size the attention biases are for
IMAGE_SIZE = 224
#: the stem's total stride: the first stage works on 14x14 tokens
PATCH_SIZE = 16
#: width of each attention's values, relative to its keys: 2 in the blocks, 4 when subsampling
ATTN_RATIO, SUBSAMPLE_ATTN_RATIO = 2, 4
#: hidden width of every MLP, relative to its input
MLP_RATIO = 2

# --- building blocks -----------------------------------------------------------------------


class ConvBN(nn.Layer):
    """Bias-free conv ``c`` -> BatchNorm ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.c = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.bn(self.c(x))


class LinearBN(nn.Layer):
    """Bias-free linear ``c`` -> BatchNorm ``bn`` over every token; ``zero_init`` starts the
    BatchNorm scale at 0 (the last layer of a residual branch)."""

    def __init__(self, in_features: int, out_features: int, *, zero_init: bool = False) -> None:
        super().__init__()
        self.c = nn.Linear(in_features, out_features, bias_attr=False)
        self.bn = nn.BatchNorm1D(out_features, weight_attr=paddle.ParamAttr(initializer=Constant(0.0 if zero_init else 1.0)))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.c(x)
        return self.bn(x.flatten(0, 1)).reshape(x.shape)


class BNLinear(nn.Layer):
    """BatchNorm ``bn`` -> linear ``l``: a classifier head."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1D(in_features)
        self.l = nn.Linear(in_features, out_features)  # noqa: E741 (PaddleClas's parameter name)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.l(self.bn(x))


class Residual(nn.Layer):
    """``x + m(x)``, the branch dropped per sample with stochastic depth."""

    def __init__(self, m: nn.Layer, drop_path: float) -> None:
        super().__init__()
        self.m = m
        self.drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.drop_path(self.m(x))


def mlp(dim: int) -> nn.Sequential:
    """LinearBN -> Hardswish -> LinearBN (its BatchNorm scale starting at 0)."""
    hidden = dim * MLP_RATIO
    return nn.Sequential(LinearBN(dim, hidden), nn.Hardswish(), LinearBN(hidden, dim, zero_init=True))


def bias_indices(resolution: int, query_resolution: int, stride: int) -> tuple[int, list[int]]:
    """The attention-bias table of queries on a ``query_resolution`` grid (every ``stride``-th
    point) attending to keys on a ``resolution`` grid: the number of distinct (|dy|, |dx|)
    offsets, and each query-key pair's index into them (numbered as first met)."""
    offsets: dict[tuple[int, int], int] = {}
    indices = []
    for qy, qx in itertools.product(range(query_resolution), repeat=2):
        for ky, kx in itertools.product(range(resolution), repeat=2):
            offset = (abs(qy * stride - ky), abs(qx * stride - kx))
            indices.append(offsets.setdefault(offset, len(offsets)))
    return len(offsets), indices


class AttentionBias(nn.Layer):
    """Holds a learned bias per head and key-query offset (``attention_biases``, without weight
    decay) and the index of each query-key pair's offset (``attention_bias_idxs``)."""

    def _add_biases(self, num_heads: int, resolution: int, query_resolution: int, stride: int) -> None:
        count, indices = bias_indices(resolution, query_resolution, stride)
        self.attention_biases = constant_parameter(self, [num_heads, count], 0.0, decay=False)
        queries, keys = query_resolution**2, resolution**2
        self.register_buffer("attention_bias_idxs", paddle.to_tensor(indices, dtype="int64").reshape([queries, keys]))

    def _biases(self) -> paddle.Tensor:
        """``[heads, queries, keys]``."""
        queries, keys = self.attention_bias_idxs.shape
        return paddle.gather(self.attention_biases, self.attention_bias_idxs.flatten(), axis=1).reshape([-1, queries, keys])


class Attention(AttentionBias):
    """Multi-head attention with BatchNorm projections: ``qkv``, then Hardswish -> ``proj``;
    queries and keys ``key_dim`` wide per head, values ``ATTN_RATIO`` times that."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, *, resolution: int) -> None:
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = ATTN_RATIO * key_dim
        self.scale = key_dim**-0.5
        self.qkv = LinearBN(dim, num_heads * (2 * key_dim + self.value_dim))
        self.proj = nn.Sequential(nn.Hardswish(), LinearBN(num_heads * self.value_dim, dim, zero_init=True))
        self._add_biases(num_heads, resolution, resolution, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape([batch, tokens, self.num_heads, -1]).transpose([0, 2, 1, 3])
        q, k, v = paddle.split(qkv, [self.key_dim, self.key_dim, self.value_dim], axis=3)
        return self.proj(merge_heads(attend(q, k, v, self.scale, bias=self._biases())))


class Subsample(nn.Layer):
    """Every ``stride``-th token of a ``resolution`` x ``resolution`` grid, in both directions."""

    def __init__(self, stride: int, resolution: int) -> None:
        super().__init__()
        self.stride, self.resolution = stride, resolution

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        batch, _, dim = x.shape
        grid = x.reshape([batch, self.resolution, self.resolution, dim])
        return grid[:, :: self.stride, :: self.stride].reshape([batch, -1, dim])


class AttentionSubsample(AttentionBias):
    """Attention from a subsampled grid of queries (``q``: subsample -> LinearBN) to every token
    (keys and values from ``kv``), widening the tokens to ``out_dim`` (Hardswish -> ``proj``):
    LeViT's downsampling between stages."""

    def __init__(self, in_dim: int, out_dim: int, key_dim: int, num_heads: int, *, resolution: int, stride: int = 2) -> None:
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = SUBSAMPLE_ATTN_RATIO * key_dim
        self.scale = key_dim**-0.5
        self.query_resolution = (resolution - 1) // stride + 1
        self.kv = LinearBN(in_dim, num_heads * (key_dim + self.value_dim))
        self.q = nn.Sequential(Subsample(stride, resolution), LinearBN(in_dim, num_heads * key_dim))
        self.proj = nn.Sequential(nn.Hardswish(), LinearBN(num_heads * self.value_dim, out_dim))
        self._add_biases(num_heads, resolution, self.query_resolution, stride)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        batch, tokens, _ = x.shape
        kv = self.kv(x).reshape([batch, tokens, self.num_heads, -1]).transpose([0, 2, 1, 3])
        k, v = paddle.split(kv, [self.key_dim, self.value_dim], axis=3)
        q = self.q(x).reshape([batch, -1, self.num_heads, self.key_dim]).transpose([0, 2, 1, 3])
        return self.proj(merge_heads(attend(q, k, v, self.scale, bias=self._biases())))


# --- the model -----------------------------------------------------------------------------


class LeViT(Backbone):
    """LeViT for 224x224 input: a stem of four stride-2 3x3 ConvBNs with Hardswish
    (``patch_embed``), three stages of attention and MLP residual blocks on 14x14, 7x7 and 4x4
    tokens, joined by subsampling attention (all in ``blocks``), the mean over tokens and the
    classifier ``head`` (BatchNorm -> linear).

    ``embed_dims``, ``num_heads``, ``depths``: per stage; ``key_dim``: the width of a query or
    key per head; ``drop_path``: the stochastic-depth rate of every residual block (each
    variant fixes it, as PaddleClas does). ``distillation``: add the distillation head
    ``head_dist``; the model then returns the mean of both heads in inference, and in training
    ``{"logits": head, "dist_logits": head_dist}`` for a DeiT-style distillation loss.
    ``lr_mult_list`` has 4 values: the stem, then each stage; ``return_stages`` gives the
    three stage maps ``[N, C, H, W]`` (14x14, 7x7, 4x4).
    """

    def __init__(
        self,
        *,
        embed_dims: Sequence[int],
        key_dim: int,
        num_heads: Sequence[int],
        depths: Sequence[int],
        drop_path: float,
        distillation: bool = False,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        check_rates(contract["name"], drop_path=drop_path)
        width = embed_dims[0]
        self.patch_embed = nn.Sequential(
            ConvBN(3, width // 8, 3, 2, 1), nn.Hardswish(),
            ConvBN(width // 8, width // 4, 3, 2, 1), nn.Hardswish(),
            ConvBN(width // 4, width // 2, 3, 2, 1), nn.Hardswish(),
            ConvBN(width // 2, width, 3, 2, 1),
        )
        resolution = IMAGE_SIZE // PATCH_SIZE
        self.resolutions: list[int] = []
        stages: list[list[nn.Layer]] = []
        for stage, (dim, heads, depth) in enumerate(zip(embed_dims, num_heads, depths)):
            layers: list[nn.Layer] = []
            if stage > 0:
                previous = embed_dims[stage - 1]
                subsample = AttentionSubsample(previous, dim, key_dim, previous // key_dim, resolution=resolution)
                resolution = subsample.query_resolution
                layers += [subsample, Residual(mlp(dim), drop_path)]
            for _ in range(depth):
                layers += [Residual(Attention(dim, key_dim, heads, resolution=resolution), drop_path), Residual(mlp(dim), drop_path)]
            stages.append(layers)
            self.resolutions.append(resolution)
        self.blocks = nn.Sequential(*(layer for layers in stages for layer in layers))
        self.stage_ends = list(itertools.accumulate(len(layers) for layers in stages))
        self.stage_maps = nn.LayerList([TokensToMap() for _ in stages])
        self.head = BNLinear(embed_dims[-1], self.class_num)
        self.head_dist = BNLinear(embed_dims[-1], self.class_num) if distillation else None
        for head in (self.head, self.head_dist):
            if head is not None:
                init_transformer_weights(head)

        self.finish(
            lr_groups={"stem": [self.patch_embed], **{f"stage{i}": layers for i, layers in enumerate(stages)}},
            stages=list(self.stage_maps),
        )
        if distillation:
            self.register_forward_post_hook(_merge_outputs)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | dict[str, paddle.Tensor]:
        check_input_size(self.model_name, x, IMAGE_SIZE, "attention biases")
        x = map_to_tokens(self.patch_embed(x))
        start = 0
        for stage, end in enumerate(self.stage_ends):
            for index in range(start, end):
                x = self.blocks[index](x)
            resolution = self.resolutions[stage]
            x = map_to_tokens(self.stage_maps[stage](x, resolution, resolution))
            start = end
        features = x.mean(axis=1)
        logits = self.head(features)
        if self.head_dist is None:
            return logits
        dist_logits = self.head_dist(features)
        if self.training:
            return {"logits": logits, "dist_logits": dist_logits}
        return (logits + dist_logits) / 2


def _merge_outputs(model: nn.Layer, inputs: Any, output: Any) -> Any:
    """With stage outputs asked for, the base class nests the training outputs under
    ``"logits"``; lift them to the top level."""
    if isinstance(output, dict) and isinstance(output.get("logits"), dict):
        output = {**output, **output.pop("logits")}
    return output


MIN_INPUT_SIZE = IMAGE_SIZE

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) ------------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"LeViT_128S": 0.7598, "LeViT_128": 0.7810, "LeViT_192": 0.7934, "LeViT_256": 0.8085, "LeViT_384": 0.8191},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "LeViT_128S": dict(embed_dims=(128, 256, 384), key_dim=16, num_heads=(4, 6, 8), depths=(2, 3, 4), drop_path=0.0),
    "LeViT_128": dict(embed_dims=(128, 256, 384), key_dim=16, num_heads=(4, 8, 12), depths=(4, 4, 4), drop_path=0.0),
    "LeViT_192": dict(embed_dims=(192, 288, 384), key_dim=32, num_heads=(3, 5, 6), depths=(4, 4, 4), drop_path=0.0),
    "LeViT_256": dict(embed_dims=(256, 384, 512), key_dim=32, num_heads=(4, 6, 8), depths=(4, 4, 4), drop_path=0.0),
    "LeViT_384": dict(embed_dims=(384, 512, 768), key_dim=32, num_heads=(6, 9, 12), depths=(4, 4, 4), drop_path=0.1),
}

BUILDERS = builders(LeViT, VARIANTS, WEIGHTS)
