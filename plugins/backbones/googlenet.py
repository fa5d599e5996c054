"""GoogLeNet (Szegedy et al. 2014), as PaddleClas 2.6 builds it (model_zoo/googlenet.py).

PaddleClas's version has bias-free convolutions without BatchNorm and applies
ReLU only after each Inception module's concatenation; corolla keeps that, and
its parameter names, so that PaddleClas's weights give the same outputs.
The two auxiliary classifiers exist (their weights load) but run only in
training with ``aux_logits=True``; they need 224x224 input.
"""
from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders

MIN_INPUT_SIZE = 224


# --- building blocks ---------------------------------------------------------------------


def _xavier_linear(in_features: int, out_features: int, fan_in: int) -> nn.Linear:
    """A Linear initialised U(-sqrt(3/fan_in), sqrt(3/fan_in)) as PaddleClas does here."""
    bound = (3.0 / fan_in) ** 0.5
    return nn.Linear(
        in_features, out_features, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))
    )


class ConvLayer(nn.Layer):
    """A bias-free convolution (``_conv``), nothing else."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self._conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias_attr=False
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._conv(x)


class Inception(nn.Layer):
    """Four branches (1x1; 1x1->3x3; 1x1->5x5; 3x3 max-pool->1x1), concatenated, then ReLU."""

    def __init__(self, in_channels: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, proj: int) -> None:
        super().__init__()
        self._conv1 = ConvLayer(in_channels, c1, 1)
        self._conv3r = ConvLayer(in_channels, c3_reduce, 1)
        self._conv3 = ConvLayer(c3_reduce, c3, 3)
        self._conv5r = ConvLayer(in_channels, c5_reduce, 1)
        self._conv5 = ConvLayer(c5_reduce, c5, 5)
        self._pool = nn.MaxPool2D(3, stride=1, padding=1)
        self._convprj = ConvLayer(in_channels, proj, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        branches = [
            self._conv1(x),
            self._conv3(self._conv3r(x)),
            self._conv5(self._conv5r(x)),
            self._convprj(self._pool(x)),
        ]
        return nn.functional.relu(paddle.concat(branches, axis=1))


# --- the model --------------------------------------------------------------------------------


class GoogLeNet(Backbone):
    """Stem, Inception 3a-3b, 4a-4e, 5a-5b (the 3 stages), global pool, dropout 0.4, ``_fc_out``.

    ``lr_mult_list`` has 4 values (stem, stages 0-2; the classifiers keep 1.0).
    With ``aux_logits`` the model returns, in training, ``{"logits",
    "aux_logits1", "aux_logits2"}`` from the heads on 4a and 4d (PaddleClas's
    GoogLeNetLoss weighs them 0.3).
    """

    def __init__(self, *, aux_logits: bool = False, **contract: Any) -> None:
        super().__init__(**contract)
        self.aux_logits = aux_logits
        self._conv = ConvLayer(3, 64, 7, stride=2)
        self._pool = nn.MaxPool2D(3, stride=2)
        self._conv_1 = ConvLayer(64, 64, 1)
        self._conv_2 = ConvLayer(64, 192, 3)

        self._ince3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self._ince3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self._ince4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self._ince4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self._ince4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self._ince4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self._ince4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self._ince5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self._ince5b = Inception(832, 384, 192, 384, 48, 128, 128)

        self._pool_5 = nn.AdaptiveAvgPool2D(1)
        self._drop = nn.Dropout(p=0.4, mode="downscale_in_infer")
        self._fc_out = _xavier_linear(1024, self.class_num, 1024)

        self._pool_o1 = nn.AvgPool2D(5, stride=3)
        self._conv_o1 = ConvLayer(512, 128, 1)
        self._fc_o1 = _xavier_linear(1152, 1024, 2048)
        self._drop_o1 = nn.Dropout(p=0.7, mode="downscale_in_infer")
        self._out1 = _xavier_linear(1024, self.class_num, 1024)
        self._pool_o2 = nn.AvgPool2D(5, stride=3)
        self._conv_o2 = ConvLayer(528, 128, 1)
        self._fc_o2 = _xavier_linear(1152, 1024, 2048)
        self._drop_o2 = nn.Dropout(p=0.7, mode="downscale_in_infer")
        self._out2 = _xavier_linear(1024, self.class_num, 1024)

        self.finish(
            lr_groups={
                "stem": [self._conv, self._conv_1, self._conv_2],
                "stage0": [self._ince3a, self._ince3b],
                "stage1": [self._ince4a, self._ince4b, self._ince4c, self._ince4d, self._ince4e],
                "stage2": [self._ince5a, self._ince5b],
            },
            stages=[self._ince3b, self._ince4e, self._ince5b],
        )
        # after finish, so that the auxiliary logits join its features
        self._auxiliary: dict[str, paddle.Tensor] = {}
        self.register_forward_post_hook(_with_auxiliary_logits)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._pool(self._conv(x))
        x = self._pool(self._conv_2(self._conv_1(x)))
        x = self._ince3b(self._ince3a(x))
        ince4a = self._ince4a(self._pool(x))
        ince4d = self._ince4d(self._ince4c(self._ince4b(ince4a)))
        x = self._ince5b(self._ince5a(self._pool(self._ince4e(ince4d))))
        logits = self._fc_out(self._drop(self._pool_5(x)).flatten(1))
        if self.aux_logits and self.training:
            # PaddleClas's second head has no ReLU after _fc_o2; its weights were trained so
            aux = nn.functional.relu(self._fc_o1(self._conv_o1(self._pool_o1(ince4a)).flatten(1)))
            self._auxiliary["aux_logits1"] = self._out1(self._drop_o1(aux))
            aux = self._fc_o2(self._conv_o2(self._pool_o2(ince4d)).flatten(1))
            self._auxiliary["aux_logits2"] = self._out2(self._drop_o2(aux))
        return logits


def _with_auxiliary_logits(model: GoogLeNet, inputs: Any, output: Any) -> dict[str, paddle.Tensor] | None:
    """The model's output with the auxiliary logits of this call added (None: unchanged)."""
    if not model._auxiliary:
        return None
    auxiliary, model._auxiliary = model._auxiliary, {}
    return {**output, **auxiliary} if isinstance(output, dict) else {"logits": output, **auxiliary}


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"GoogLeNet": 0.7070})

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "GoogLeNet": dict(),
}

BUILDERS = builders(GoogLeNet, VARIANTS, WEIGHTS)
