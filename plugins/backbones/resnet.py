"""ResNet (He et al. 2015, https://arxiv.org/abs/1512.03385) and its PaddleClas variants,
weight-compatible with PaddleClas 2.6's legendary_models/resnet.py.

``_vd`` (ResNet-D, He et al. 2019): a deep 3-conv stem and shortcuts that average-pool
before their 1x1 convolution. ``layer_type="DiverseBranchBlock"`` replaces the convolutions
inside the blocks by Diverse Branch Blocks (Ding et al. 2021, https://arxiv.org/abs/2103.13425).
``ResNet50_vc`` (the deep stem only) is PaddleClas's model_zoo network,
:class:`~._zoo_resnet.ResNeXt`.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import paddle
from paddle import nn

from corolla.api import MODEL_ZOO_URL, ComponentArgumentError, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._checks import check_choice, check_positive_int, check_stride_list
from corolla.plugins.backbones._init import uniform_linear
from corolla.plugins.backbones._layers import ConvBN, LeanBatchNorm2D, conv_bn
from corolla.plugins.backbones._zoo_resnet import DATA_FORMATS, ResNeXt

# --- Diverse Branch Block ------------------------------------------------------------------


class BorderedBatchNorm(nn.Layer):
    """BatchNorm (``bn``), then a border of ``pad`` pixels holding what that BatchNorm makes
    of a zero input (from its running statistics): the unpadded k x k convolution after it
    then sees what it would see had its input been zero-padded before the BatchNorm."""

    def __init__(self, channels: int, pad: int) -> None:
        super().__init__()
        # PaddleClas's momentum for this BatchNorm (PyTorch's convention: the running
        # statistics keep only 10% of their value at each step in Paddle's)
        self.bn = LeanBatchNorm2D(channels, momentum=0.1)
        self.pad = pad

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(x)
        if self.pad == 0:
            return x
        bn = self.bn
        border = (bn.bias - bn.weight * bn._mean / paddle.sqrt(bn._variance + bn._epsilon)).reshape([1, -1, 1, 1])
        return nn.functional.pad(x - border, [self.pad] * 4) + border


class IdentityConv1x1(nn.Conv2D):
    """A bias-free 1x1 convolution whose kernel is the identity plus ``weight`` (which starts at zero)."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            channels, channels, 1, bias_attr=False, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
        )
        self.register_buffer("identity", paddle.eye(channels).reshape([channels, channels, 1, 1]), persistable=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return nn.functional.conv2d(x, self.weight + self.identity)


def _conv_bn_pair(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Sequential:
    conv, bn = conv_bn(in_channels, out_channels, kernel_size, stride=stride)
    return nn.Sequential(("conv", conv), ("bn", bn))


#: a convolution kernel and the bias after it
KernelBias = tuple[paddle.Tensor, paddle.Tensor]


def _fold(kernel: paddle.Tensor, bn: nn.BatchNorm2D) -> KernelBias:
    """The kernel and bias of a bias-free convolution followed by ``bn`` (inference statistics)."""
    scale = bn.weight / paddle.sqrt(bn._variance + bn._epsilon)
    return kernel * scale.reshape([-1, 1, 1, 1]), bn.bias - bn._mean * scale


def _chain(first: KernelBias, second: KernelBias) -> KernelBias:
    """One k x k convolution computing a biased 1x1 convolution (``first``) then a biased
    k x k one (``second``), the second unpadded over a border holding the first's bias."""
    (k1, b1), (k2, b2) = first, second
    kernel = nn.functional.conv2d(k2, k1.transpose([1, 0, 2, 3]))  # sums over the middle channels
    return kernel, (k2 * b1.reshape([1, -1, 1, 1])).sum([1, 2, 3]) + b2


class DiverseBranchBlock(nn.Layer):
    """A k x k conv-BN learnt as the sum of four branches, each ending in a BatchNorm:
    the k x k conv (``dbb_origin``), a 1x1 conv (``dbb_1x1``), 1x1 conv -> k x k average
    pool (``dbb_avg``) and an identity-initialised 1x1 conv -> k x k conv (``dbb_1x1_kxk``);
    then ReLU where ``act``. All four are linear: :meth:`re_parameterize` merges them into
    one biased conv (``dbb_reparam``) for inference."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, act: str | None = None
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.kernel_size, self.stride = kernel_size, stride
        self.dbb_reparam: nn.Conv2D | None = None
        self.dbb_origin = _conv_bn_pair(in_channels, out_channels, kernel_size, stride)
        self.dbb_avg = nn.Sequential(
            ("conv", nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)),
            ("bn", BorderedBatchNorm(out_channels, pad)),
            ("avg", nn.AvgPool2D(kernel_size, stride=stride, padding=0)),
            ("avgbn", LeanBatchNorm2D(out_channels)),
        )
        self.dbb_1x1 = _conv_bn_pair(in_channels, out_channels, 1, stride)
        self.dbb_1x1_kxk = nn.Sequential(
            ("idconv1", IdentityConv1x1(in_channels)),
            ("bn1", BorderedBatchNorm(in_channels, pad)),
            ("conv2", nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias_attr=False)),
            ("bn2", LeanBatchNorm2D(out_channels)),
        )
        self.act = nn.ReLU() if act else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.dbb_reparam is not None:
            y = self.dbb_reparam(x)
        else:
            y = self.dbb_origin(x) + self.dbb_1x1(x) + self.dbb_avg(x) + self.dbb_1x1_kxk(x)
        return y if self.act is None else self.act(y)

    @paddle.no_grad()
    def re_parameterize(self) -> None:
        """Replace the four branches by the one conv they add up to, with the BatchNorms'
        running statistics folded in (same outputs in inference; the block no longer trains
        as a DBB)."""
        if self.dbb_reparam is not None:
            return
        k, pad = self.kernel_size, self.kernel_size // 2
        origin = _fold(self.dbb_origin.conv.weight, self.dbb_origin.bn)
        one_by_one = _fold(self.dbb_1x1.conv.weight, self.dbb_1x1.bn)
        one_by_one = (nn.functional.pad(one_by_one[0], [pad] * 4), one_by_one[1])
        identity_1x1 = self.dbb_1x1_kxk.idconv1
        then_kxk = _chain(
            _fold(identity_1x1.weight + identity_1x1.identity, self.dbb_1x1_kxk.bn1.bn),
            _fold(self.dbb_1x1_kxk.conv2.weight, self.dbb_1x1_kxk.bn2),
        )
        channels = self.dbb_avg.avgbn.weight.shape[0]
        average = paddle.eye(channels).reshape([channels, channels, 1, 1]).tile([1, 1, k, k]) / k**2
        then_average = _chain(
            _fold(self.dbb_avg.conv.weight, self.dbb_avg.bn.bn), _fold(average, self.dbb_avg.avgbn)
        )
        branches = (origin, one_by_one, then_kxk, then_average)
        conv = self.dbb_origin.conv
        self.dbb_reparam = nn.Conv2D(conv._in_channels, conv._out_channels, k, stride=self.stride, padding=pad)
        self.dbb_reparam.weight.set_value(sum(kernel for kernel, _ in branches))
        self.dbb_reparam.bias.set_value(sum(bias for _, bias in branches))
        for branch in ("dbb_origin", "dbb_1x1", "dbb_avg", "dbb_1x1_kxk"):
            delattr(self, branch)


#: ``layer_type`` values (PaddleClas's names) of the convolution units inside the blocks
LAYER_TYPES = ("ConvBNLayer", "DiverseBranchBlock")

# --- residual blocks -------------------------------------------------------------------------


class _Block(nn.Layer):
    """What both block types share: the shortcut (``short``) and the closing ReLU."""

    expansion = 1

    def _make_shortcut(
        self, in_channels: int, out_channels: int, stride: int, *, project: bool, avg_down: bool, data_format: str
    ) -> None:
        # vd shortcuts pool with the block's stride, then project at stride 1
        self.short_pool = (
            nn.AvgPool2D(2, stride=stride, padding="SAME", ceil_mode=True, data_format=data_format)
            if project and avg_down
            else None
        )
        self.short = (
            ConvBN(in_channels, out_channels, 1, stride=1 if avg_down else stride, data_format=data_format)
            if project
            else None
        )

    def _add_shortcut(self, x: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
        if self.short is not None:
            x = self.short(x if self.short_pool is None else self.short_pool(x))
        return nn.functional.relu(x + y)


class BasicBlock(_Block):
    """Two 3x3 convolution units (the first carries the stride) plus shortcut (ResNet18/34)."""

    def __init__(
        self, in_channels: int, width: int, *, stride: int, unit: Callable[..., nn.Layer], **shortcut: Any
    ) -> None:
        super().__init__()
        self.conv0 = unit(in_channels, width, 3, stride=stride, act="relu")
        self.conv1 = unit(width, width, 3)
        self._make_shortcut(in_channels, width, stride, **shortcut)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._add_shortcut(x, self.conv1(self.conv0(x)))


class BottleneckBlock(_Block):
    """1x1 -> 3x3 (carries the stride) -> 1x1 with 4x expansion, plus shortcut (ResNet50 and deeper)."""

    expansion = 4

    def __init__(
        self, in_channels: int, width: int, *, stride: int, unit: Callable[..., nn.Layer], **shortcut: Any
    ) -> None:
        super().__init__()
        self.conv0 = unit(in_channels, width, 1, act="relu")
        self.conv1 = unit(width, width, 3, stride=stride, act="relu")
        self.conv2 = unit(width, width * 4, 1)
        self._make_shortcut(in_channels, width * 4, stride, **shortcut)

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
STAGE_WIDTHS = (64, 128, 256, 512)
#: what ``stem_act`` may name
STEM_ACTIVATIONS = (None, "relu", "relu6", "hardswish", "hardsigmoid", "swish", "sigmoid")

# --- the model -----------------------------------------------------------------------------


class ResNet(Backbone):
    """ResNet of ``depth`` layers: ``stem``, ``max_pool``, ``blocks`` (4 stages), ``avg_pool``,
    classifier ``fc``; ``vd`` selects the ResNet-D stem and shortcuts.

    ``stride_list``: 5 strides (stem conv, max-pool, stages 1-3; default all 2), each an int or
    a [height, width] pair (PaddleClas's PULC text-line teacher keeps the width with [2, 1]);
    ``stem_act``: the stem's activation (None for none); ``max_pool=False`` drops the
    max-pool and strides the first block by ``stride_list[1]`` instead;
    ``input_image_channel``: channels of the input images; ``data_format``: "NCHW", or
    "NHWC" to run every layer channels-last (the input is still given NCHW; the stage
    outputs are then NHWC); ``layer_type``: "ConvBNLayer", or "DiverseBranchBlock" for DBB
    convolutions inside the blocks, which :meth:`re_parameterize` merges for inference
    (PaddleClas publishes ResNet18 DBB weights at MODEL_ZOO_URL +
    "legendary_models/ResNet18_dbb_pretrained.pdparams": give that URL as ``pretrained``);
    ``use_first_short_conv=False``: the first block keeps an identity shortcut (PaddleClas's
    ResNet18_dbb config; basic blocks only).
    ``lr_mult_list`` has 5 values: stem, stage0-stage3 (the classifier keeps 1.0);
    ``return_stages`` picks among the 4 stages.
    """

    def __init__(
        self,
        *,
        depth: int,
        vd: bool,
        stride_list: Sequence[int | Sequence[int]] | None = None,
        stem_act: str | None = "relu",
        max_pool: bool = True,
        input_image_channel: int = 3,
        data_format: str = "NCHW",
        layer_type: str = "ConvBNLayer",
        use_first_short_conv: bool = True,
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        block_type, counts = DEPTHS[depth]
        strides = [2] * 5
        if stride_list is not None:
            strides = check_stride_list(name, stride_list, 5, "stem conv, max-pool, stages 1-3")
        check_choice(name, "stem_act", stem_act, STEM_ACTIVATIONS)
        check_choice(name, "data_format", data_format, DATA_FORMATS)
        check_choice(name, "layer_type", layer_type, LAYER_TYPES)
        check_positive_int(name, "input_image_channel", input_image_channel)
        if layer_type == "DiverseBranchBlock" and data_format != "NCHW":
            raise ComponentArgumentError(f"{name}: DiverseBranchBlock layers need NCHW data (data_format)")
        first_stride = 1 if max_pool else strides[1]
        if not use_first_short_conv and (block_type is not BasicBlock or first_stride not in (1, [1, 1])):
            raise ComponentArgumentError(
                f"{name}: use_first_short_conv=False needs a first block that keeps the shape "
                "(basic blocks, depth 18 or 34, with the max-pool)"
            )
        self.data_format = data_format
        unit = {"data_format": data_format}
        conv_unit = DiverseBranchBlock if layer_type == "DiverseBranchBlock" else functools.partial(ConvBN, **unit)

        stem = (
            [(input_image_channel, 32, 3, strides[0]), (32, 32, 3, 1), (32, 64, 3, 1)]
            if vd
            else [(input_image_channel, 64, 7, strides[0])]
        )
        self.stem = nn.Sequential(*(ConvBN(i, o, k, stride=s, act=stem_act, **unit) for i, o, k, s in stem))
        self.max_pool = nn.MaxPool2D(3, stride=strides[1], padding=1, **unit) if max_pool else None

        stages: list[list[_Block]] = []
        channels = 64
        for stage, (count, width) in enumerate(zip(counts, STAGE_WIDTHS)):
            blocks = []
            for i in range(count):
                first = (stage, i) == (0, 0)
                blocks.append(
                    block_type(
                        channels,
                        width,
                        stride=(first_stride if stage == 0 else strides[stage + 1]) if i == 0 else 1,
                        unit=conv_unit,
                        project=i == 0 and (use_first_short_conv or stage > 0),
                        avg_down=vd and not first,
                        **unit,
                    )
                )
                channels = width * block_type.expansion
            stages.append(blocks)
        self.blocks = nn.Sequential(*(block for blocks in stages for block in blocks))

        self.avg_pool = nn.AdaptiveAvgPool2D(1, **unit)
        self.fc = uniform_linear(channels, self.class_num)

        self.finish(
            lr_groups={"stem": [self.stem], **{f"stage{i}": blocks for i, blocks in enumerate(stages)}},
            stages=[blocks[-1] for blocks in stages],
        )

    def re_parameterize(self) -> None:
        """Merge every DiverseBranchBlock into one conv (``layer_type="DiverseBranchBlock"``;
        same outputs in inference, fewer operations; nothing to do otherwise)."""
        for layer in self.sublayers():
            if isinstance(layer, DiverseBranchBlock):
                layer.re_parameterize()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.data_format == "NHWC":
            x = x.transpose([0, 2, 3, 1])
        x = self.stem(x)
        if self.max_pool is not None:
            x = self.max_pool(x)
        return self.fc(self.avg_pool(self.blocks(x)).flatten(1))


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its model list) -----------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {
        "ResNet18": 0.7098,
        "ResNet18_vd": 0.7226,
        "ResNet34": 0.7457,
        "ResNet34_vd": 0.7598,
        "ResNet34_vd_ssld": 0.7972,
        "ResNet50": 0.7650,
        "ResNet50_vd": 0.7912,
        "ResNet50_vd_ssld": 0.8300,
        "ResNet101": 0.7756,
        "ResNet101_vd": 0.8017,
        "ResNet101_vd_ssld": 0.8373,
        "ResNet152": 0.7826,
        "ResNet152_vd": 0.8059,
        "ResNet200_vd": 0.8093,
    },
) | weights_table(MODEL_ZOO_URL + "{}_pretrained.pdparams", {"ResNet50_vc": 0.7835})

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "ResNet18": dict(depth=18, vd=False),
    "ResNet18_vd": dict(depth=18, vd=True),
    "ResNet34": dict(depth=34, vd=False),
    "ResNet34_vd": dict(depth=34, vd=True),
    "ResNet50": dict(depth=50, vd=False),
    "ResNet50_vd": dict(depth=50, vd=True),
    "ResNet50_vc": dict(
        model=ResNeXt, depth=50, groups=1, group_width=64, deep_stem=(32, 32, 64), avg_down=False, se_reduction=None
    ),
    "ResNet101": dict(depth=101, vd=False),
    "ResNet101_vd": dict(depth=101, vd=True),
    "ResNet152": dict(depth=152, vd=False),
    "ResNet152_vd": dict(depth=152, vd=True),
    "ResNet200_vd": dict(depth=200, vd=True),
}

BUILDERS = builders(ResNet, VARIANTS, WEIGHTS)
