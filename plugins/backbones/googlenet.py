"""GoogLeNet (Szegedy et al. 2014), as PaddleClas 2.6 builds it (model_zoo/googlenet.py).

PaddleClas's version has bias-free convolutions without BatchNorm and applies
ReLU only after each Inception module's concatenation; corolla keeps that, and
its parameter names, so that PaddleClas's weights give the same outputs.
The two auxiliary classifiers exist (their weights load) but run only in
training with ``aux_logits=True``; they need 224x224 input.
"""
from __future__ import annotations

from typing import Sequence

import paddle
from paddle import nn

from corolla.plugins.backbones._layers import make_builder, resolve_lr_mult_list, resolve_return_stages
from corolla.engine.weights import MODEL_ZOO_URL, PretrainedWeights

LR_GROUPS = ("stem", "stage0", "stage1", "stage2")


# --- building blocks ---------------------------------------------------------------------


def _xavier_linear(in_features: int, out_features: int, fan_in: int) -> nn.Linear:
    """A Linear initialised U(-sqrt(3/fan_in), sqrt(3/fan_in)) as PaddleClas does here."""
    bound = (3.0 / fan_in) ** 0.5
    return nn.Linear(
        in_features, out_features, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))
    )


class ConvLayer(nn.Layer):
    """A bias-free convolution (``_conv``), nothing else."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, lr_mult: float = 1.0) -> None:
        super().__init__()
        self._conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            weight_attr=paddle.ParamAttr(learning_rate=lr_mult),
            bias_attr=False,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._conv(x)


class Inception(nn.Layer):
    """Four branches (1x1; 1x1->3x3; 1x1->5x5; 3x3 max-pool->1x1), concatenated, then ReLU."""

    def __init__(self, in_channels: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, proj: int, lr_mult: float) -> None:
        super().__init__()
        self._conv1 = ConvLayer(in_channels, c1, 1, lr_mult=lr_mult)
        self._conv3r = ConvLayer(in_channels, c3_reduce, 1, lr_mult=lr_mult)
        self._conv3 = ConvLayer(c3_reduce, c3, 3, lr_mult=lr_mult)
        self._conv5r = ConvLayer(in_channels, c5_reduce, 1, lr_mult=lr_mult)
        self._conv5 = ConvLayer(c5_reduce, c5, 5, lr_mult=lr_mult)
        self._pool = nn.MaxPool2D(3, stride=1, padding=1)
        self._convprj = ConvLayer(in_channels, proj, 1, lr_mult=lr_mult)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        branches = [
            self._conv1(x),
            self._conv3(self._conv3r(x)),
            self._conv5(self._conv5r(x)),
            self._convprj(self._pool(x)),
        ]
        return nn.functional.relu(paddle.concat(branches, axis=1))


# --- the model --------------------------------------------------------------------------------


class GoogLeNetModel(nn.Layer):
    """Stem, Inception 3a-3b, 4a-4e, 5a-5b (the 3 stages), global pool, dropout 0.4, ``_fc_out``.

    ``lr_mult_list`` has 4 values (stem, stages 0-2; the classifiers keep 1.0).
    With ``aux_logits`` the model returns, in training, ``{"logits",
    "aux_logits1", "aux_logits2"}`` from the heads on 4a and 4d (PaddleClas's
    GoogLeNetLoss weighs them 0.3).
    """

    def __init__(
        self,
        *,
        name: str = "GoogLeNet",
        class_num: int = 1000,
        lr_mult_list: Sequence[float] | None = None,
        return_stages: bool | int | Sequence[int] | None = None,
        aux_logits: bool = False,
    ) -> None:
        super().__init__()
        self.lr_mult_list = resolve_lr_mult_list(name, lr_mult_list, LR_GROUPS)
        self._wanted = frozenset(resolve_return_stages(name, return_stages, len(LR_GROUPS) - 1))
        self.aux_logits = aux_logits
        stem, lr3, lr4, lr5 = self.lr_mult_list
        self._conv = ConvLayer(3, 64, 7, stride=2, lr_mult=stem)
        self._pool = nn.MaxPool2D(3, stride=2)
        self._conv_1 = ConvLayer(64, 64, 1, lr_mult=stem)
        self._conv_2 = ConvLayer(64, 192, 3, lr_mult=stem)

        self._ince3a = Inception(192, 64, 96, 128, 16, 32, 32, lr3)
        self._ince3b = Inception(256, 128, 128, 192, 32, 96, 64, lr3)
        self._ince4a = Inception(480, 192, 96, 208, 16, 48, 64, lr4)
        self._ince4b = Inception(512, 160, 112, 224, 24, 64, 64, lr4)
        self._ince4c = Inception(512, 128, 128, 256, 24, 64, 64, lr4)
        self._ince4d = Inception(512, 112, 144, 288, 32, 64, 64, lr4)
        self._ince4e = Inception(528, 256, 160, 320, 32, 128, 128, lr4)
        self._ince5a = Inception(832, 256, 160, 320, 32, 128, 128, lr5)
        self._ince5b = Inception(832, 384, 192, 384, 48, 128, 128, lr5)

        self._pool_5 = nn.AdaptiveAvgPool2D(1)
        self._drop = nn.Dropout(p=0.4, mode="downscale_in_infer")
        self._fc_out = _xavier_linear(1024, class_num, 1024)

        self._pool_o1 = nn.AvgPool2D(5, stride=3)
        self._conv_o1 = ConvLayer(512, 128, 1)
        self._fc_o1 = _xavier_linear(1152, 1024, 2048)
        self._drop_o1 = nn.Dropout(p=0.7, mode="downscale_in_infer")
        self._out1 = _xavier_linear(1024, class_num, 1024)
        self._pool_o2 = nn.AvgPool2D(5, stride=3)
        self._conv_o2 = ConvLayer(528, 128, 1)
        self._fc_o2 = _xavier_linear(1152, 1024, 2048)
        self._drop_o2 = nn.Dropout(p=0.7, mode="downscale_in_infer")
        self._out2 = _xavier_linear(1024, class_num, 1024)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | dict[str, paddle.Tensor]:
        outputs: dict[str, paddle.Tensor] = {}
        x = self._pool(self._conv(x))
        x = self._pool(self._conv_2(self._conv_1(x)))
        x = self._ince3b(self._ince3a(x))
        self._keep(outputs, 0, x)
        ince4a = self._ince4a(self._pool(x))
        ince4d = self._ince4d(self._ince4c(self._ince4b(ince4a)))
        x = self._ince4e(ince4d)
        self._keep(outputs, 1, x)
        x = self._ince5b(self._ince5a(self._pool(x)))
        self._keep(outputs, 2, x)
        logits = self._fc_out(self._drop(self._pool_5(x)).flatten(1))
        if self.aux_logits and self.training:
            # PaddleClas's second head has no ReLU after _fc_o2; its weights were trained so
            aux = nn.functional.relu(self._fc_o1(self._conv_o1(self._pool_o1(ince4a)).flatten(1)))
            outputs["aux_logits1"] = self._out1(self._drop_o1(aux))
            aux = self._fc_o2(self._conv_o2(self._pool_o2(ince4d)).flatten(1))
            outputs["aux_logits2"] = self._out2(self._drop_o2(aux))
        return {"logits": logits, **outputs} if outputs else logits

    def _keep(self, outputs: dict[str, paddle.Tensor], stage: int, x: paddle.Tensor) -> None:
        if stage in self._wanted:
            outputs[f"stage{stage}"] = x


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS: dict[str, PretrainedWeights] = {
    "GoogLeNet": PretrainedWeights(MODEL_ZOO_URL + "GoogLeNet_pretrained.pdparams", 0.7070),
}


# --- builders ---------------------------------------------------------------------------------


GoogLeNet = make_builder(
    "GoogLeNet",
    GoogLeNetModel,
    WEIGHTS,
    "GoogLeNet (Inception v1).\n\n"
    "  lr_mult_list: 4 values: stem, stage0 (3a-3b), stage1 (4a-4e), stage2 (5a-5b).\n"
    "  aux_logits: in training also return the auxiliary heads' logits (224x224 input).",
)
