"""FasterNet (Chen et al. 2023, https://arxiv.org/abs/2303.03667): a fast convolutional net
whose blocks convolve only a quarter of the channels spatially (partial convolution) before a
1x1 MLP, weight-compatible with PaddleClas 2.6's ``FasterNet_T0..L``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders, embedded_stages
from corolla.plugins.backbones._checks import check_rate
from corolla.plugins.backbones._init import init_weights, truncated_normal
from corolla.plugins.backbones._layers import LeanBatchNorm2D, activation
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates

#: the part of a block's channels its 3x3 convolution sees is 1 / PARTIAL_DIVISOR
PARTIAL_DIVISOR = 4
MLP_RATIO = 2
#: the width of the 1x1 convolution between global pooling and the classifier
FEATURE_DIM = 1280

# --- building blocks -----------------------------------------------------------------------


class PartialConv(nn.Layer):
    """A 3x3 convolution (``partial_conv3``) of the first ``dim // 4`` channels; the rest pass."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.split = [dim // PARTIAL_DIVISOR, dim - dim // PARTIAL_DIVISOR]
        self.partial_conv3 = nn.Conv2D(self.split[0], self.split[0], 3, padding=1, bias_attr=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        convolved, passed = paddle.split(x, self.split, axis=1)
        return paddle.concat([self.partial_conv3(convolved), passed], axis=1)


class FasterBlock(nn.Layer):
    """Partial conv (``spatial_mixing``), then a 1x1 conv-BN-act-1x1 conv MLP (``mlp``) with the residual."""

    def __init__(self, dim: int, *, act: str, drop_path: float) -> None:
        super().__init__()
        hidden = dim * MLP_RATIO
        self.spatial_mixing = PartialConv(dim)
        self.mlp = nn.Sequential(
            nn.Conv2D(dim, hidden, 1, bias_attr=False),
            LeanBatchNorm2D(hidden),
            activation(act),
            nn.Conv2D(hidden, dim, 1, bias_attr=False),
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.drop_path(self.mlp(self.spatial_mixing(x)))


class BasicStage(nn.Layer):
    """The :class:`FasterBlock`\\ s of one stage (``blocks``)."""

    def __init__(self, dim: int, rates: list[float], *, act: str) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(FasterBlock(dim, act=act, drop_path=rate) for rate in rates))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.blocks(x)


class PatchEmbed(nn.Layer):
    """The stem: a bias-free 4x4/4 convolution (``proj``) and its BatchNorm (``norm``)."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(3, out_channels, 4, stride=4, bias_attr=False)
        # PaddleClas keeps PyTorch's momentum value here, which Paddle reads the other way
        # round: these running statistics follow each batch with weight 0.9.
        self.norm = LeanBatchNorm2D(out_channels, momentum=0.1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.proj(x))


class PatchMerging(nn.Layer):
    """Between stages: a bias-free 2x2/2 convolution doubling the channels (``reduction``), then BatchNorm."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.reduction = nn.Conv2D(in_channels, 2 * in_channels, 2, stride=2, bias_attr=False)
        self.norm = LeanBatchNorm2D(2 * in_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.reduction(x))


# --- the model -----------------------------------------------------------------------------


class FasterNet(Backbone):
    """FasterNet: a 4x4/4 conv-BN stem ``patch_embed``, four stages of :class:`FasterBlock`\\ s
    (``embed_dim * 2**i`` channels) joined by 2x2/2 conv-BN merges (all in ``stages``), global
    pooling, a 1x1 conv to 1280 channels with the activation, and ``head``.

    ``act`` (fixed per variant): gelu or relu; ``drop_path_rate``: stochastic depth of the last
    block (rising linearly from 0), None for the variant's own (``default_drop_path_rate``:
    PaddleClas fixes 0 for T0 up to 0.3 for L).
    ``lr_mult_list`` has 5 values: the stem, then each stage (with the merge before it);
    ``return_stages`` picks stages 0-3.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        depths: tuple[int, int, int, int],
        act: str,
        default_drop_path_rate: float,
        drop_path_rate: float | None = None,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        rate = default_drop_path_rate if drop_path_rate is None else drop_path_rate
        rates = drop_path_rates(check_rate(name, "drop_path_rate", rate), sum(depths))

        self.patch_embed = PatchEmbed(embed_dim)
        stages, layers = [], []
        for i, depth in enumerate(depths):
            dim = embed_dim * 2**i
            if i:
                layers.append(PatchMerging(dim // 2))
            stages.append(BasicStage(dim, rates[sum(depths[:i]) : sum(depths[: i + 1])], act=act))
            layers.append(stages[-1])
        self.stages = nn.Sequential(*layers)
        features = embed_dim * 2 ** (len(depths) - 1)
        self.avgpool_pre_head = nn.Sequential(
            nn.AdaptiveAvgPool2D(1), nn.Conv2D(features, FEATURE_DIM, 1, bias_attr=False), activation(act)
        )
        self.head = nn.Linear(FEATURE_DIM, self.class_num)

        init_weights(self, conv=truncated_normal(), linear=truncated_normal())
        embeds = [self.patch_embed, *layers[1::2]]  # the stem, then the merge before each later stage
        self.finish(lr_groups=embedded_stages(list(zip(embeds, stages))), stages=stages)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.avgpool_pre_head(self.stages(self.patch_embed(x)))
        return self.head(x.flatten(1))


# --- pretrained weights (PaddleClas 2.6 model zoo, converted from the authors'; top-1 from its FasterNet docs) --

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {
        "FasterNet_T0": 0.719,
        "FasterNet_T1": 0.759,
        "FasterNet_T2": 0.791,
        "FasterNet_S": 0.813,
        "FasterNet_M": 0.830,
        "FasterNet_L": 0.835,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "FasterNet_T0": dict(embed_dim=40, depths=(1, 2, 8, 2), act="gelu", default_drop_path_rate=0.0),
    "FasterNet_T1": dict(embed_dim=64, depths=(1, 2, 8, 2), act="gelu", default_drop_path_rate=0.02),
    "FasterNet_T2": dict(embed_dim=96, depths=(1, 2, 8, 2), act="relu", default_drop_path_rate=0.05),
    "FasterNet_S": dict(embed_dim=128, depths=(1, 2, 13, 2), act="relu", default_drop_path_rate=0.1),
    "FasterNet_M": dict(embed_dim=144, depths=(3, 4, 18, 3), act="relu", default_drop_path_rate=0.2),
    "FasterNet_L": dict(embed_dim=192, depths=(3, 4, 18, 3), act="relu", default_drop_path_rate=0.3),
}

BUILDERS = builders(FasterNet, VARIANTS, WEIGHTS)
