"""ConvNeXt (Liu et al. 2022, https://arxiv.org/abs/2201.03545): a ResNet modernised with
Transformer design choices (patchify stem, 7x7 depthwise convolutions, LayerNorm, GELU,
inverted bottlenecks, layer scale), weight-compatible with PaddleClas 2.6's ``ConvNeXt_*``."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, ComponentArgumentError, weights_table
from corolla.plugins.backbones._base import Backbone, builders, embedded_stages
from corolla.plugins.backbones._checks import check_rate
from corolla.plugins.backbones._init import init_weights, truncated_normal
from corolla.plugins.backbones._regularize import DropPath, drop_path_rates

# --- building blocks -----------------------------------------------------------------------


class LayerNorm2D(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (parameters ``weight``, ``bias``)."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return super().forward(x.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])


class ConvNeXtBlock(nn.Layer):
    """7x7 depthwise conv, LayerNorm, a 4x wide MLP over the channels (as Linear layers on
    NHWC), a learned per-channel scale ``gamma`` (when ``layer_scale`` > 0), then the residual."""

    def __init__(self, dim: int, *, drop_path: float, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv2D(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, epsilon=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = (
            self.create_parameter([dim], default_initializer=nn.initializer.Constant(layer_scale))
            if layer_scale > 0
            else None
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.dwconv(x).transpose([0, 2, 3, 1])
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.transpose([0, 3, 1, 2]))


# --- the model -----------------------------------------------------------------------------


class ConvNeXt(Backbone):
    """ConvNeXt: a 4x4/4 patchify stem, four stages of :class:`ConvNeXtBlock` (each after a
    LayerNorm + 2x2/2 downsampling conv but the first), global pooling, LayerNorm, ``head``.

    ``depths``/``dims``: blocks and channels per stage; ``drop_path_rate``: stochastic depth
    of the last block (rising linearly from 0 over all blocks); ``layer_scale_init_value``:
    the initial ``gamma`` (0 drops it, and its weights no longer load); ``head_init_scale``:
    scales the classifier's initial weights. ``lr_mult_list`` has 5 values: the stem, then each
    stage (with its downsampling layer); ``return_stages`` picks stages 0-3.
    """

    def __init__(
        self,
        *,
        depths: tuple[int, int, int, int],
        dims: tuple[int, int, int, int],
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        head_init_scale: float = 1.0,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        rates = iter(drop_path_rates(check_rate(name, "drop_path_rate", drop_path_rate), sum(depths)))
        if layer_scale_init_value < 0:
            raise ComponentArgumentError(f"{name}: layer_scale_init_value must be >= 0; got {layer_scale_init_value!r}")

        self.downsample_layers = nn.LayerList(
            [nn.Sequential(nn.Conv2D(3, dims[0], 4, stride=4), LayerNorm2D(dims[0], epsilon=1e-6))]
            + [
                nn.Sequential(LayerNorm2D(c_in, epsilon=1e-6), nn.Conv2D(c_in, c_out, 2, stride=2))
                for c_in, c_out in zip(dims, dims[1:])
            ]
        )
        self.stages = nn.LayerList(
            [
                nn.Sequential(
                    *(ConvNeXtBlock(dim, drop_path=next(rates), layer_scale=layer_scale_init_value) for _ in range(depth))
                )
                for depth, dim in zip(depths, dims)
            ]
        )
        self.norm = nn.LayerNorm(dims[-1], epsilon=1e-6)
        self.head = nn.Linear(dims[-1], self.class_num)

        init_weights(self, conv=truncated_normal(), linear=truncated_normal())
        truncated_normal(0.02 * head_init_scale)(self.head.weight)

        self.finish(lr_groups=embedded_stages(list(zip(self.downsample_layers, self.stages))), stages=list(self.stages))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
        return self.head(self.norm(x.mean([-2, -1])))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"ConvNeXt_tiny": 0.8203, "ConvNeXt_small": 0.8313, "ConvNeXt_base_224": 0.8384, "ConvNeXt_large_224": 0.8426},
) | weights_table(
    MODEL_ZOO_URL + "{}_pretrained.pdparams",
    {"ConvNeXt_base_384": 0.8490, "ConvNeXt_large_384": 0.8527},
    input_size=384,
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "ConvNeXt_tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "ConvNeXt_small": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    "ConvNeXt_base_224": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "ConvNeXt_base_384": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "ConvNeXt_large_224": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    "ConvNeXt_large_384": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
}

BUILDERS = builders(ConvNeXt, VARIANTS, WEIGHTS)
