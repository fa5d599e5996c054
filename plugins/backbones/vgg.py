"""VGG (Simonyan and Zisserman 2014): stacks of 3x3 convolutions and three fully connected layers.

PaddleClas's version (legendary_models/vgg.py, whose parameter names corolla keeps)
has bias-free convolutions and no BatchNorm. The classifier flattens a 7x7 map,
so the input must be 224x224 (up to 255).
"""
from __future__ import annotations

from typing import Sequence

import paddle
from paddle import nn

from corolla.plugin.errors import ComponentArgumentError
from corolla.plugins.backbones._layers import (
    make_builder,
    resolve_lr_mult_list,
    resolve_return_stages,
    run_stages,
    with_features,
)
from corolla.engine.weights import MODEL_ZOO_URL, PretrainedWeights

#: depth -> convolutions per block
DEPTHS: dict[int, tuple[int, ...]] = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
LR_GROUPS = ("stage0", "stage1", "stage2", "stage3", "stage4")


# --- building blocks ---------------------------------------------------------------------


class ConvBlock(nn.Layer):
    """``convs`` 3x3 convolutions (``conv1``, ``conv2``, ...), each followed by ReLU, then a 2x2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int, convs: int, lr_mult: float) -> None:
        super().__init__()
        self._convs = []
        for i in range(convs):
            conv = nn.Conv2D(
                in_channels if i == 0 else out_channels,
                out_channels,
                3,
                padding=1,
                weight_attr=paddle.ParamAttr(learning_rate=lr_mult),
                bias_attr=False,
            )
            self._convs.append(self.add_sublayer(f"conv{i + 1}", conv))
        self.max_pool = nn.MaxPool2D(2, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for conv in self._convs:
            x = nn.functional.relu(conv(x))
        return self.max_pool(x)


# --- the model --------------------------------------------------------------------------------


class VGGNet(nn.Layer):
    """Five conv blocks (``conv_block_1..5``, the 5 stages and ``lr_mult_list`` groups),
    then ``fc1``, ``fc2`` (ReLU, dropout 0.5) and ``fc3``. ``stop_grad_layers=n``
    freezes the first n blocks, as in PaddleClas."""

    def __init__(
        self,
        *,
        name: str,
        depth: int,
        class_num: int = 1000,
        lr_mult_list: Sequence[float] | None = None,
        stop_grad_layers: int = 0,
        return_stages: bool | int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.lr_mult_list = resolve_lr_mult_list(name, lr_mult_list, LR_GROUPS)
        self._wanted = frozenset(resolve_return_stages(name, return_stages, len(BLOCK_CHANNELS)))
        if not isinstance(stop_grad_layers, int) or not 0 <= stop_grad_layers <= len(BLOCK_CHANNELS):
            raise ComponentArgumentError(f"{name}: stop_grad_layers must be 0 to 5 (blocks to freeze); got {stop_grad_layers!r}")
        self._stages = []
        in_channels = 3
        for index, (convs, channels) in enumerate(zip(DEPTHS[depth], BLOCK_CHANNELS)):
            block = ConvBlock(in_channels, channels, convs, self.lr_mult_list[index])
            if index < stop_grad_layers:
                for param in block.parameters():
                    param.trainable = False
            self._stages.append([self.add_sublayer(f"conv_block_{index + 1}", block)])
            in_channels = channels
        self.drop = nn.Dropout(p=0.5, mode="downscale_in_infer")
        self.fc1 = nn.Linear(7 * 7 * 512, 4096)
        self.fc2 = nn.Linear(4096, 4096)
        self.fc3 = nn.Linear(4096, class_num)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | dict[str, paddle.Tensor]:
        features: dict[str, paddle.Tensor] = {}
        x = run_stages(self._stages, x, self._wanted, features).flatten(1)
        x = self.drop(nn.functional.relu(self.fc1(x)))
        x = self.drop(nn.functional.relu(self.fc2(x)))
        return with_features(self.fc3(x), features, bool(self._wanted))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

_LEGENDARY = MODEL_ZOO_URL + "legendary_models/"

WEIGHTS: dict[str, PretrainedWeights] = {
    "VGG11": PretrainedWeights(_LEGENDARY + "VGG11_pretrained.pdparams", 0.693),
    "VGG13": PretrainedWeights(_LEGENDARY + "VGG13_pretrained.pdparams", 0.700),
    "VGG16": PretrainedWeights(_LEGENDARY + "VGG16_pretrained.pdparams", 0.720),
    "VGG19": PretrainedWeights(_LEGENDARY + "VGG19_pretrained.pdparams", 0.726),
}


# --- builders ---------------------------------------------------------------------------------


def _builder(name: str, depth: int):
    summary = (
        f"VGG-{depth} (224x224 input).\n\n"
        "  lr_mult_list: 5 values, one per conv block (stage0-stage4).\n"
        "  stop_grad_layers: freeze the first n of the 5 conv blocks."
    )
    return make_builder(name, VGGNet, WEIGHTS, summary, depth=depth)


VGG11 = _builder("VGG11", 11)
VGG13 = _builder("VGG13", 13)
VGG16 = _builder("VGG16", 16)
VGG19 = _builder("VGG19", 19)
