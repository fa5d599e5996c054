"""VGG (Simonyan and Zisserman 2014): stacks of 3x3 convolutions and three fully connected layers.

PaddleClas's version (legendary_models/vgg.py, whose parameter names corolla keeps)
has bias-free convolutions and no BatchNorm. The classifier flattens a 7x7 map,
so the input must be 224x224 (up to 255).
"""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, ComponentArgumentError, weights_table
from corolla.plugins.backbones._base import Backbone, builders

MIN_INPUT_SIZE = 224

#: depth -> convolutions per block
DEPTHS: dict[int, tuple[int, ...]] = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)


# --- building blocks ---------------------------------------------------------------------


class ConvBlock(nn.Layer):
    """``convs`` 3x3 convolutions (``conv1``, ``conv2``, ...), each followed by ReLU, then a 2x2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int, convs: int) -> None:
        super().__init__()
        self._convs = []
        for i in range(convs):
            conv = nn.Conv2D(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias_attr=False)
            self._convs.append(self.add_sublayer(f"conv{i + 1}", conv))
        self.max_pool = nn.MaxPool2D(2, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for conv in self._convs:
            x = nn.functional.relu(conv(x))
        return self.max_pool(x)


# --- the model --------------------------------------------------------------------------------


class VGGNet(Backbone):
    """Five conv blocks (``conv_block_1..5``, the 5 stages and ``lr_mult_list`` groups),
    then ``fc1``, ``fc2`` (ReLU, dropout 0.5) and ``fc3``. ``stop_grad_layers=n``
    freezes the first n blocks, as in PaddleClas."""

    def __init__(self, *, depth: int, stop_grad_layers: int = 0, **contract: Any) -> None:
        super().__init__(**contract)
        if not isinstance(stop_grad_layers, int) or not 0 <= stop_grad_layers <= len(BLOCK_CHANNELS):
            raise ComponentArgumentError(
                f"{contract['name']}: stop_grad_layers must be 0 to 5 (blocks to freeze); got {stop_grad_layers!r}"
            )
        self._blocks = []
        in_channels = 3
        for index, (convs, channels) in enumerate(zip(DEPTHS[depth], BLOCK_CHANNELS)):
            block = ConvBlock(in_channels, channels, convs)
            if index < stop_grad_layers:
                for param in block.parameters():
                    param.trainable = False
            self._blocks.append(self.add_sublayer(f"conv_block_{index + 1}", block))
            in_channels = channels
        self.drop = nn.Dropout(p=0.5, mode="downscale_in_infer")
        self.fc1 = nn.Linear(7 * 7 * 512, 4096)
        self.fc2 = nn.Linear(4096, 4096)
        self.fc3 = nn.Linear(4096, self.class_num)
        self.finish(lr_groups={f"stage{i}": [block] for i, block in enumerate(self._blocks)}, stages=self._blocks)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for block in self._blocks:
            x = block(x)
        x = self.drop(nn.functional.relu(self.fc1(x.flatten(1))))
        x = self.drop(nn.functional.relu(self.fc2(x)))
        return self.fc3(x)


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {"VGG11": 0.693, "VGG13": 0.700, "VGG16": 0.720, "VGG19": 0.726},
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "VGG11": dict(depth=11),
    "VGG13": dict(depth=13),
    "VGG16": dict(depth=16),
    "VGG19": dict(depth=19),
}

BUILDERS = builders(VGGNet, VARIANTS, WEIGHTS)
