"""Inception-v4 (Szegedy et al. 2016), as PaddleClas 2.6 builds it (model_zoo/inception_v4.py),
with its parameter names. Trained at 299x299; any input from 75x75 runs."""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import ZooConvBN

MIN_INPUT_SIZE = 75


# --- building blocks ---------------------------------------------------------------------


def _unit(
    in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *, stride: int = 1,
    padding: int | tuple[int, int] = 0,
) -> ZooConvBN:
    """The conv-BN-ReLU unit every Inception module is made of."""
    return ZooConvBN(in_channels, out_channels, kernel_size, stride=stride, padding=padding, act="relu")


def _cat(*branches: paddle.Tensor) -> paddle.Tensor:
    return paddle.concat(branches, axis=1)


class InceptionStem(nn.Layer):
    """299x299x3 -> 35x35x384 through three convolutions and three two-branch splits."""

    def __init__(self) -> None:
        super().__init__()
        u = _unit
        self._conv_1 = u(3, 32, 3, stride=2)
        self._conv_2 = u(32, 32, 3)
        self._conv_3 = u(32, 64, 3, padding=1)
        self._pool = nn.MaxPool2D(3, stride=2)
        self._conv2 = u(64, 96, 3, stride=2)
        self._conv1_1 = u(160, 64, 1)
        self._conv1_2 = u(64, 96, 3)
        self._conv2_1 = u(160, 64, 1)
        self._conv2_2 = u(64, 64, (7, 1), padding=(3, 0))
        self._conv2_3 = u(64, 64, (1, 7), padding=(0, 3))
        self._conv2_4 = u(64, 96, 3)
        self._conv3 = u(192, 192, 3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._conv_3(self._conv_2(self._conv_1(x)))
        x = _cat(self._pool(x), self._conv2(x))
        x = _cat(
            self._conv1_2(self._conv1_1(x)),
            self._conv2_4(self._conv2_3(self._conv2_2(self._conv2_1(x)))),
        )
        return _cat(self._conv3(x), self._pool(x))


class InceptionA(nn.Layer):
    """35x35x384 -> 35x35x384."""

    def __init__(self) -> None:
        super().__init__()
        u = _unit
        self._pool = nn.AvgPool2D(3, stride=1, padding=1)
        self._conv1 = u(384, 96, 1)
        self._conv2 = u(384, 96, 1)
        self._conv3_1 = u(384, 64, 1)
        self._conv3_2 = u(64, 96, 3, padding=1)
        self._conv4_1 = u(384, 64, 1)
        self._conv4_2 = u(64, 96, 3, padding=1)
        self._conv4_3 = u(96, 96, 3, padding=1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return _cat(
            self._conv1(self._pool(x)),
            self._conv2(x),
            self._conv3_2(self._conv3_1(x)),
            self._conv4_3(self._conv4_2(self._conv4_1(x))),
        )


class ReductionA(nn.Layer):
    """35x35x384 -> 17x17x1024."""

    def __init__(self) -> None:
        super().__init__()
        u = _unit
        self._pool = nn.MaxPool2D(3, stride=2)
        self._conv2 = u(384, 384, 3, stride=2)
        self._conv3_1 = u(384, 192, 1)
        self._conv3_2 = u(192, 224, 3, padding=1)
        self._conv3_3 = u(224, 256, 3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return _cat(self._pool(x), self._conv2(x), self._conv3_3(self._conv3_2(self._conv3_1(x))))


class InceptionB(nn.Layer):
    """17x17x1024 -> 17x17x1024, with factorised 7x7 convolutions."""

    def __init__(self) -> None:
        super().__init__()
        u = _unit
        self._pool = nn.AvgPool2D(3, stride=1, padding=1)
        self._conv1 = u(1024, 128, 1)
        self._conv2 = u(1024, 384, 1)
        self._conv3_1 = u(1024, 192, 1)
        self._conv3_2 = u(192, 224, (1, 7), padding=(0, 3))
        self._conv3_3 = u(224, 256, (7, 1), padding=(3, 0))
        self._conv4_1 = u(1024, 192, 1)
        self._conv4_2 = u(192, 192, (1, 7), padding=(0, 3))
        self._conv4_3 = u(192, 224, (7, 1), padding=(3, 0))
        self._conv4_4 = u(224, 224, (1, 7), padding=(0, 3))
        self._conv4_5 = u(224, 256, (7, 1), padding=(3, 0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return _cat(
            self._conv1(self._pool(x)),
            self._conv2(x),
            self._conv3_3(self._conv3_2(self._conv3_1(x))),
            self._conv4_5(self._conv4_4(self._conv4_3(self._conv4_2(self._conv4_1(x))))),
        )


class ReductionB(nn.Layer):
    """17x17x1024 -> 8x8x1536."""

    def __init__(self) -> None:
        super().__init__()
        u = _unit
        self._pool = nn.MaxPool2D(3, stride=2)
        self._conv2_1 = u(1024, 192, 1)
        self._conv2_2 = u(192, 192, 3, stride=2)
        self._conv3_1 = u(1024, 256, 1)
        self._conv3_2 = u(256, 256, (1, 7), padding=(0, 3))
        self._conv3_3 = u(256, 320, (7, 1), padding=(3, 0))
        self._conv3_4 = u(320, 320, 3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return _cat(
            self._pool(x),
            self._conv2_2(self._conv2_1(x)),
            self._conv3_4(self._conv3_3(self._conv3_2(self._conv3_1(x)))),
        )


class InceptionC(nn.Layer):
    """8x8x1536 -> 8x8x1536, with split 1x3 / 3x1 branches."""

    def __init__(self) -> None:
        super().__init__()
        u = _unit
        self._pool = nn.AvgPool2D(3, stride=1, padding=1)
        self._conv1 = u(1536, 256, 1)
        self._conv2 = u(1536, 256, 1)
        self._conv3_0 = u(1536, 384, 1)
        self._conv3_1 = u(384, 256, (1, 3), padding=(0, 1))
        self._conv3_2 = u(384, 256, (3, 1), padding=(1, 0))
        self._conv4_0 = u(1536, 384, 1)
        self._conv4_00 = u(384, 448, (1, 3), padding=(0, 1))
        self._conv4_000 = u(448, 512, (3, 1), padding=(1, 0))
        self._conv4_1 = u(512, 256, (1, 3), padding=(0, 1))
        self._conv4_2 = u(512, 256, (3, 1), padding=(1, 0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        branch3 = self._conv3_0(x)
        branch4 = self._conv4_000(self._conv4_00(self._conv4_0(x)))
        return _cat(
            self._conv1(self._pool(x)),
            self._conv2(x),
            self._conv3_1(branch3),
            self._conv3_2(branch3),
            self._conv4_1(branch4),
            self._conv4_2(branch4),
        )


# --- the model --------------------------------------------------------------------------------


class InceptionV4(Backbone):
    """Stem; 4 x A; reduction A + 7 x B; reduction B + 3 x C (the 3 stages); pool,
    dropout 0.2, ``out``. ``lr_mult_list`` has 4 values (stem, stages 0-2)."""

    def __init__(self, **contract: Any) -> None:
        super().__init__(**contract)
        self._inception_stem = InceptionStem()
        stage_a = [self.add_sublayer(f"_inceptionA_{i}", InceptionA()) for i in range(1, 5)]
        stage_b = [self.add_sublayer("_reductionA", ReductionA())]
        stage_b += [self.add_sublayer(f"_inceptionB_{i}", InceptionB()) for i in range(1, 8)]
        stage_c = [self.add_sublayer("_reductionB", ReductionB())]
        stage_c += [self.add_sublayer(f"_inceptionC_{i}", InceptionC()) for i in range(1, 4)]
        self._inception_blocks = stage_a + stage_b + stage_c
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self._drop = nn.Dropout(p=0.2, mode="downscale_in_infer")
        self.out = uniform_linear(1536, self.class_num)
        self.finish(
            lr_groups={"stem": [self._inception_stem], "stage0": stage_a, "stage1": stage_b, "stage2": stage_c},
            stages=[stage_a[-1], stage_b[-1], stage_c[-1]],
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._inception_stem(x)
        for module in self._inception_blocks:
            x = module(x)
        return self.out(self._drop(self.avg_pool(x).flatten(1)))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"InceptionV4": 0.8077}, input_size=299)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "InceptionV4": dict(),
}

BUILDERS = builders(InceptionV4, VARIANTS, WEIGHTS)
