"""ResNet (He et al. 2015) and its PaddleClas variants.

``_vd`` (ResNet-D, He et al. 2019): a deep 3-conv stem and shortcuts that
average-pool before their 1x1 convolution. ``ResNet50_vc``: the deep stem only;
it is PaddleClas's model_zoo network, built by :class:`~.resnext.ResNeXt`.
Parameter names and shapes are those of PaddleClas 2.6 (legendary_models/resnet.py).
"""
from __future__ import annotations

import math
from typing import Sequence

import paddle
from paddle import nn

from corolla.plugin.errors import ComponentArgumentError
from corolla.plugins.backbones._layers import (
    ConvBN,
    make_builder,
    resolve_lr_mult_list,
    resolve_return_stages,
    run_stages,
    with_features,
)
from corolla.plugins.backbones.resnext import ResNeXt
from corolla.engine.weights import MODEL_ZOO_URL, PretrainedWeights

LR_GROUPS = ("stem", "stage0", "stage1", "stage2", "stage3")
STAGE_WIDTHS = (64, 128, 256, 512)


# --- building blocks ---------------------------------------------------------------------


class _Block(nn.Layer):
    """What both block types share: the shortcut (``short``) and the closing ReLU."""

    expansion = 1

    def _make_shortcut(self, in_channels: int, out_channels: int, stride: int, *, project: bool, avg_down: bool, lr_mult: float) -> None:
        # vd shortcuts pool with the block's stride, then project at stride 1.
        self.short_pool = nn.AvgPool2D(2, stride=stride, padding="SAME", ceil_mode=True) if project and avg_down else None
        self.short = ConvBN(in_channels, out_channels, 1, stride=1 if avg_down else stride, lr_mult=lr_mult) if project else None

    def _add_shortcut(self, x: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
        if self.short is not None:
            x = self.short(x if self.short_pool is None else self.short_pool(x))
        return nn.functional.relu(x + y)


class BasicBlock(_Block):
    """Two 3x3 conv-BNs (the first carries the stride) plus shortcut (ResNet18/34)."""

    def __init__(self, in_channels: int, width: int, *, stride: int, project: bool, avg_down: bool, lr_mult: float) -> None:
        super().__init__()
        self.conv0 = ConvBN(in_channels, width, 3, stride=stride, act="relu", lr_mult=lr_mult)
        self.conv1 = ConvBN(width, width, 3, lr_mult=lr_mult)
        self._make_shortcut(in_channels, width, stride, project=project, avg_down=avg_down, lr_mult=lr_mult)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._add_shortcut(x, self.conv1(self.conv0(x)))


class BottleneckBlock(_Block):
    """1x1 -> 3x3 (carries the stride) -> 1x1 with 4x expansion, plus shortcut (ResNet50 and deeper)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, *, stride: int, project: bool, avg_down: bool, lr_mult: float) -> None:
        super().__init__()
        self.conv0 = ConvBN(in_channels, width, 1, act="relu", lr_mult=lr_mult)
        self.conv1 = ConvBN(width, width, 3, stride=stride, act="relu", lr_mult=lr_mult)
        self.conv2 = ConvBN(width, width * 4, 1, lr_mult=lr_mult)
        self._make_shortcut(in_channels, width * 4, stride, project=project, avg_down=avg_down, lr_mult=lr_mult)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._add_shortcut(x, self.conv2(self.conv1(self.conv0(x))))


#: depth -> (block type, blocks per stage)
DEPTHS: dict[int, tuple[type[_Block], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (BottleneckBlock, (3, 4, 6, 3)),
    101: (BottleneckBlock, (3, 4, 23, 3)),
    152: (BottleneckBlock, (3, 8, 36, 3)),
    200: (BottleneckBlock, (3, 12, 48, 3)),
}


# --- the model --------------------------------------------------------------------------------


class ResNet(nn.Layer):
    """ResNet of ``depth`` layers; ``vd`` selects the ResNet-D stem and shortcuts.

    ``lr_mult_list`` has 5 values (stem, stages 0-3; the classifier keeps 1.0),
    ``stride_list`` 5 strides (stem conv, max-pool, stages 1-3), ``return_stages``
    picks among the 4 stages.
    """

    def __init__(
        self,
        *,
        name: str,
        depth: int,
        vd: bool,
        class_num: int = 1000,
        lr_mult_list: Sequence[float] | None = None,
        stride_list: Sequence[int] | None = None,
        return_stages: bool | int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        block_type, counts = DEPTHS[depth]
        self.lr_mult_list = resolve_lr_mult_list(name, lr_mult_list, LR_GROUPS)
        strides = _resolve_stride_list(name, stride_list)
        self._wanted = frozenset(resolve_return_stages(name, return_stages, len(counts)))

        stem = [(3, 32, 3, strides[0]), (32, 32, 3, 1), (32, 64, 3, 1)] if vd else [(3, 64, 7, strides[0])]
        self.stem = nn.Sequential(
            *(ConvBN(i, o, k, stride=s, act="relu", lr_mult=self.lr_mult_list[0]) for i, o, k, s in stem)
        )
        self.max_pool = nn.MaxPool2D(3, stride=strides[1], padding=1)

        self._stages: list[list[_Block]] = []
        channels = 64
        for stage, (count, width) in enumerate(zip(counts, STAGE_WIDTHS)):
            blocks = []
            for i in range(count):
                blocks.append(
                    block_type(
                        channels,
                        width,
                        stride=strides[stage + 1] if i == 0 and stage > 0 else 1,
                        project=i == 0,
                        avg_down=vd and (stage, i) != (0, 0),
                        lr_mult=self.lr_mult_list[stage + 1],
                    )
                )
                channels = width * block_type.expansion
            self._stages.append(blocks)
        self.blocks = nn.Sequential(*(block for blocks in self._stages for block in blocks))

        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        bound = 1.0 / math.sqrt(channels)
        self.fc = nn.Linear(channels, class_num, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound)))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor | dict[str, paddle.Tensor]:
        features: dict[str, paddle.Tensor] = {}
        x = run_stages(self._stages, self.max_pool(self.stem(x)), self._wanted, features)
        logits = self.fc(self.avg_pool(x).flatten(1))
        return with_features(logits, features, bool(self._wanted))


def _resolve_stride_list(name: str, stride_list: Sequence[int] | None) -> list[int]:
    if stride_list is None:
        return [2, 2, 2, 2, 2]
    if not isinstance(stride_list, (list, tuple)) or len(stride_list) != 5 or not all(
        isinstance(s, int) and s >= 1 for s in stride_list
    ):
        raise ComponentArgumentError(
            f"{name}: stride_list needs 5 positive strides (stem conv, max-pool, stages 1-3); got {stride_list!r}"
        )
    return list(stride_list)


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

_LEGENDARY = MODEL_ZOO_URL + "legendary_models/"

WEIGHTS: dict[str, PretrainedWeights] = {
    "ResNet18": PretrainedWeights(_LEGENDARY + "ResNet18_pretrained.pdparams", 0.7098),
    "ResNet18_vd": PretrainedWeights(_LEGENDARY + "ResNet18_vd_pretrained.pdparams", 0.7226),
    "ResNet34": PretrainedWeights(_LEGENDARY + "ResNet34_pretrained.pdparams", 0.7457),
    "ResNet34_vd": PretrainedWeights(_LEGENDARY + "ResNet34_vd_pretrained.pdparams", 0.7598),
    "ResNet34_vd_ssld": PretrainedWeights(_LEGENDARY + "ResNet34_vd_ssld_pretrained.pdparams", 0.7972),
    "ResNet50": PretrainedWeights(_LEGENDARY + "ResNet50_pretrained.pdparams", 0.7650),
    "ResNet50_vc": PretrainedWeights(MODEL_ZOO_URL + "ResNet50_vc_pretrained.pdparams", 0.7835),
    "ResNet50_vd": PretrainedWeights(_LEGENDARY + "ResNet50_vd_pretrained.pdparams", 0.7912),
    "ResNet50_vd_ssld": PretrainedWeights(_LEGENDARY + "ResNet50_vd_ssld_pretrained.pdparams", 0.8300),
    "ResNet101": PretrainedWeights(_LEGENDARY + "ResNet101_pretrained.pdparams", 0.7756),
    "ResNet101_vd": PretrainedWeights(_LEGENDARY + "ResNet101_vd_pretrained.pdparams", 0.8017),
    "ResNet101_vd_ssld": PretrainedWeights(_LEGENDARY + "ResNet101_vd_ssld_pretrained.pdparams", 0.8373),
    "ResNet152": PretrainedWeights(_LEGENDARY + "ResNet152_pretrained.pdparams", 0.7826),
    "ResNet152_vd": PretrainedWeights(_LEGENDARY + "ResNet152_vd_pretrained.pdparams", 0.8059),
    "ResNet200_vd": PretrainedWeights(_LEGENDARY + "ResNet200_vd_pretrained.pdparams", 0.8093),
}


# --- builders ---------------------------------------------------------------------------------


def _builder(name: str, depth: int, vd: bool):
    variant = " with a deep stem and average-pool shortcuts (ResNet-D)" if vd else ""
    summary = (
        f"ResNet-{depth}{variant}.\n\n"
        "  lr_mult_list: 5 values: stem, stage0-stage3.\n"
        "  stride_list: 5 strides (stem conv, max-pool, stages 1-3), default all 2."
    )
    return make_builder(name, ResNet, WEIGHTS, summary, depth=depth, vd=vd)


ResNet18 = _builder("ResNet18", 18, vd=False)
ResNet34 = _builder("ResNet34", 34, vd=False)
ResNet50 = _builder("ResNet50", 50, vd=False)
ResNet101 = _builder("ResNet101", 101, vd=False)
ResNet152 = _builder("ResNet152", 152, vd=False)
ResNet18_vd = _builder("ResNet18_vd", 18, vd=True)
ResNet34_vd = _builder("ResNet34_vd", 34, vd=True)
ResNet50_vd = _builder("ResNet50_vd", 50, vd=True)
ResNet101_vd = _builder("ResNet101_vd", 101, vd=True)
ResNet152_vd = _builder("ResNet152_vd", 152, vd=True)
ResNet200_vd = _builder("ResNet200_vd", 200, vd=True)


ResNet50_vc = make_builder(
    "ResNet50_vc",
    ResNeXt,
    WEIGHTS,
    "ResNet-50 with a deep 3-conv stem (vc; PaddleClas's model_zoo layout).\n\n"
    "  lr_mult_list: 5 values: stem, stage0-stage3.",
    depth=50,
    groups=1,
    group_width=64,
    deep_stem=(32, 32, 64),
    avg_down=False,
    se_reduction=None,
)
