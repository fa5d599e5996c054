"""SqueezeNet (Iandola et al. 2016, https://arxiv.org/abs/1602.07360), weight-compatible
with PaddleClas 2.6's ``SqueezeNet1_0`` and ``SqueezeNet1_1`` (model_zoo/squeezenet.py)."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders

# --- building blocks -----------------------------------------------------------------------


class ConvReLU(nn.Layer):
    """A convolution with bias, then ReLU (``_conv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.relu(self._conv(x))


class Fire(nn.Layer):
    """1x1 squeeze (``_conv``), then 1x1 and 3x3 expansions (``_conv_path1``, ``_conv_path2``)
    concatenated."""

    def __init__(self, in_channels: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self._conv = ConvReLU(in_channels, squeeze, 1)
        self._conv_path1 = ConvReLU(squeeze, expand, 1)
        self._conv_path2 = ConvReLU(squeeze, expand, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._conv(x)
        return paddle.concat([self._conv_path1(x), self._conv_path2(x)], axis=1)


# --- the model -----------------------------------------------------------------------------

#: version -> (stem kernel, stem padding, stem channels, per stage its fire modules as
#: (squeeze, expand) channels; each expansion is half of the module's output)
VERSIONS = {
    "1.0": (7, 0, 96, (((16, 64), (16, 64), (32, 128)), ((32, 128), (48, 192), (48, 192), (64, 256)), ((64, 256),))),
    "1.1": (3, 1, 64, (((16, 64), (16, 64)), ((32, 128), (32, 128)), ((48, 192), (48, 192), (64, 256), (64, 256)))),
}


class SqueezeNet(Backbone):
    """SqueezeNet: stem conv ``_conv`` (stride 2) with ReLU, then three stages of fire modules
    ``_conv1.._conv8``, each stage after a 3x3/2 max pooling ``_pool``; dropout 0.5, the 1x1
    classifier conv ``_conv9`` with ReLU, and global average pooling.

    Fixed per name: ``version``, "1.0" (7x7 stem, fire modules 3+4+1) or "1.1" (3x3 stem,
    2+2+4). ``lr_mult_list`` has 4 values: the stem, then each stage; ``return_stages``
    picks stages 0-2 (at strides 4, 8, 16).
    """

    def __init__(self, *, version: str, **contract: Any) -> None:
        super().__init__(**contract)
        kernel, padding, channels, stage_fires = VERSIONS[version]
        self._conv = nn.Conv2D(3, channels, kernel, stride=2, padding=padding)
        self._pool = nn.MaxPool2D(3, stride=2)
        self.stages: list[list[Fire]] = []
        number = 1
        for fires in stage_fires:
            stage = []
            for squeeze, expand in fires:
                stage.append(self.add_sublayer(f"_conv{number}", Fire(channels, squeeze, expand)))
                channels = 2 * expand
                number += 1
            self.stages.append(stage)
        self._drop = nn.Dropout(p=0.5, mode="downscale_in_infer")
        self._conv9 = nn.Conv2D(channels, self.class_num, 1)
        self._avg_pool = nn.AdaptiveAvgPool2D(1)
        groups = {"stem": [self._conv], **{f"stage{i}": stage for i, stage in enumerate(self.stages)}}
        self.finish(lr_groups=groups, stages=[stage[-1] for stage in self.stages])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = nn.functional.relu(self._conv(x))
        for stage in self.stages:
            x = self._pool(x)
            for fire in stage:
                x = fire(x)
        # PaddleClas's logits pass through ReLU: its weights were trained so
        x = nn.functional.relu(self._conv9(self._drop(x)))
        return paddle.flatten(self._avg_pool(x), start_axis=1)


#: SqueezeNet1_0's 7x7 stem and three unpadded 3x3/2 poolings need 35 pixels; SqueezeNet1_1 needs 29
MIN_INPUT_SIZE = 35

# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -------------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"SqueezeNet1_0": 0.596, "SqueezeNet1_1": 0.601})

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "SqueezeNet1_1": dict(version="1.1"),
    "SqueezeNet1_0": dict(version="1.0"),
}

BUILDERS = builders(SqueezeNet, VARIANTS, WEIGHTS)
