"""PP-LCNetV2: PaddlePaddle's second CPU-friendly lightweight network (re-parameterisable
multi-kernel depthwise convs, split pointwise convs, a residual last stage), weight-compatible
with PaddleClas 2.6's ``PPLCNetV2_small/base/large``."""
from __future__ import annotations

from typing import Any, Callable

import paddle
from paddle import nn
from paddle.nn.initializer import KaimingNormal

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import Backbone, builders
from corolla.plugins.backbones._checks import check_choice, check_positive_int
from corolla.plugins.backbones._layers import ConvBN, LastConvHead, make_divisible
from corolla.plugins.backbones._regularize import exempt_norms_from_decay

#: activation name -> layer (PaddleClas's leaky ReLU has slope 0.1)
ACTIVATIONS: dict[str, Callable[[], nn.Layer]] = {
    "relu": nn.ReLU,
    "hardswish": nn.Hardswish,
    "relu6": nn.ReLU6,
    "prelu": nn.PReLU,
    "leaky_relu": lambda: nn.LeakyReLU(negative_slope=0.1),
}

# --- building blocks -----------------------------------------------------------------------


class ConvBNAct(ConvBN):
    """:class:`~._layers.ConvBN` whose conv starts Kaiming-normal, with an activation named in
    :data:`ACTIVATIONS` (or none)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1, act: str | None
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, groups=groups, act=ACTIVATIONS[act] if act else None
        )
        KaimingNormal()(self.conv.weight)


class SqueezeExcite(nn.Layer):
    """Channel attention: pooled features -> 1x1 conv -> activation -> 1x1 conv -> sigmoid gate."""

    def __init__(self, channels: int, *, act: str, reduction: int = 4) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.act = ACTIVATIONS[act]()
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * nn.functional.sigmoid(self.conv2(self.act(self.conv1(self.avg_pool(x)))))


class RepDepthwiseSeparable(nn.Layer):
    """Depthwise conv, optional squeeze-excitation, pointwise conv (or two, ``split_pw``:
    down to half the output width and back up); with ``use_shortcut`` the input is added
    back where the shape allows.

    With ``use_rep`` the depthwise conv is a sum of depthwise conv-BN branches of kernel
    ``dw_size``, ``dw_size - 2``, ... down to 1 (3 at stride 2) followed by the activation;
    :meth:`re_parameterize` folds them into the single biased conv ``dw_conv`` for inference.
    Without it the depthwise conv-BN always uses ReLU, whatever ``act`` is, as in PaddleClas.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        dw_size: int = 3,
        split_pw: bool = False,
        use_rep: bool = False,
        use_se: bool = False,
        use_shortcut: bool = False,
        act: str,
    ) -> None:
        super().__init__()
        self.use_rep = use_rep
        self.is_repped = False
        self.use_shortcut = use_shortcut and stride == 1 and in_channels == out_channels
        if use_rep:
            self.dw_conv_list = nn.LayerList(
                [
                    ConvBNAct(in_channels, in_channels, k, stride=stride, groups=in_channels, act=None)
                    for k in range(dw_size, 0, -2)
                    if k > 1 or stride == 1
                ]
            )
            self.dw_conv = nn.Conv2D(
                in_channels, in_channels, dw_size, stride=stride, padding=(dw_size - 1) // 2, groups=in_channels
            )
            for param in self.dw_conv.parameters():  # written by re_parameterize, never trained
                param.stop_gradient = True
        else:
            self.dw_conv = ConvBNAct(in_channels, in_channels, dw_size, stride=stride, groups=in_channels, act="relu")
        # PaddleClas creates this activation in every block (a PReLU's weight exists even where unused)
        self.act = ACTIVATIONS[act]()
        self.se = SqueezeExcite(in_channels, act=act) if use_se else None
        if split_pw:
            self.pw_conv_1 = ConvBNAct(in_channels, out_channels // 2, 1, act=act)
            self.pw_conv_2 = ConvBNAct(out_channels // 2, out_channels, 1, act=act)
            self.pw_conv = None
        else:
            self.pw_conv = ConvBNAct(in_channels, out_channels, 1, act=act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.use_rep:
            y = self.dw_conv(x)
        elif self.is_repped:
            y = self.act(self.dw_conv(x))
        else:
            y = self.act(paddle.add_n([branch(x) for branch in self.dw_conv_list]))
        if self.se is not None:
            y = self.se(y)
        y = self.pw_conv(y) if self.pw_conv is not None else self.pw_conv_2(self.pw_conv_1(y))
        return x + y if self.use_shortcut else y

    @paddle.no_grad()
    def re_parameterize(self) -> None:
        """Fold the depthwise branches (with their BatchNorm statistics) into ``dw_conv``;
        the block then computes the same function with one conv (inference only)."""
        if not self.use_rep or self.is_repped:
            return
        size = self.dw_conv.weight.shape[-1]
        kernel = paddle.zeros_like(self.dw_conv.weight)
        bias = paddle.zeros_like(self.dw_conv.bias)
        for branch in self.dw_conv_list:
            bn = branch.bn
            scale = bn.weight / paddle.sqrt(bn._variance + bn._epsilon)
            pad = (size - branch.conv.weight.shape[-1]) // 2
            kernel += nn.functional.pad(branch.conv.weight * scale.reshape([-1, 1, 1, 1]), [pad, pad, pad, pad])
            bias += bn.bias - bn._mean * scale
        self.dw_conv.weight.set_value(kernel)
        self.dw_conv.bias.set_value(bias)
        self.is_repped = True


# --- the model -----------------------------------------------------------------------------

#: stage -> (in channels at scale 1, depthwise kernel, split_pw, use_rep, use_se, use_shortcut);
#: each stage doubles its width
STAGES: dict[str, tuple[int, int, bool, bool, bool, bool]] = {
    "stage0": (64, 3, False, False, False, False),
    "stage1": (128, 3, False, False, False, False),
    "stage2": (256, 5, True, True, True, False),
    "stage3": (512, 5, False, True, False, True),
}


class PPLCNetV2(LastConvHead, Backbone):
    """PP-LCNetV2: a ``stem`` (3x3 conv at stride 2 and a depthwise-separable block), four
    ``stages`` of depthwise-separable blocks (``depths`` of them, the first at stride 2),
    global pooling, an optional 1x1 ``last_conv`` to ``class_expand`` channels with the
    activation and dropout (``use_last_conv``), and the classifier ``fc``.

    ``scale``: the width; ``act``: relu, hardswish, relu6, prelu or leaky_relu.
    :meth:`re_parameterize` fuses the multi-kernel depthwise convs for inference; export and
    infer do so (:meth:`inference_model`).
    ``lr_mult_list`` has 5 values: the stem, then each stage; ``return_stages`` picks stages 0-3.
    """

    def __init__(
        self,
        *,
        scale: float,
        depths: tuple[int, int, int, int],
        dropout_prob: float = 0.0,
        use_last_conv: bool = True,
        class_expand: int = 1280,
        act: str = "relu",
        **contract: Any,
    ) -> None:
        super().__init__(**contract)
        name = contract["name"]
        check_choice(name, "act", act, list(ACTIVATIONS))
        if use_last_conv:
            check_positive_int(name, "class_expand", class_expand)

        self.stem = nn.Sequential(
            ConvBNAct(3, make_divisible(32 * scale), 3, stride=2, act=act),
            RepDepthwiseSeparable(make_divisible(32 * scale), make_divisible(64 * scale), stride=1, act=act),
        )
        stages = []
        for depth, (in_c, kernel, split_pw, use_rep, use_se, use_shortcut) in zip(depths, STAGES.values()):
            stages.append(
                nn.Sequential(
                    *(
                        RepDepthwiseSeparable(
                            make_divisible((in_c if i == 0 else in_c * 2) * scale),
                            make_divisible(in_c * 2 * scale),
                            stride=2 if i == 0 else 1,
                            dw_size=kernel,
                            split_pw=split_pw,
                            use_rep=use_rep,
                            use_se=use_se,
                            use_shortcut=use_shortcut,
                            act=act,
                        )
                        for i in range(depth)
                    )
                )
            )
        self.stages = nn.LayerList(stages)

        self.add_head(
            make_divisible(STAGES["stage3"][0] * 2 * scale), use_last_conv=use_last_conv, class_expand=class_expand, act=ACTIVATIONS[act],
            dropout_prob=dropout_prob,
        )

        exempt_norms_from_decay(self)
        self.finish(
            lr_groups={"stem": [self.stem], **{key: [stage] for key, stage in zip(STAGES, self.stages)}},
            stages=list(self.stages),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def re_parameterize(self) -> None:
        """Fuse every multi-kernel depthwise conv into one (same outputs, faster inference;
        the branches' weights then no longer train)."""
        for layer in self.sublayers():
            if isinstance(layer, RepDepthwiseSeparable):
                layer.re_parameterize()

    def inference_model(self) -> PPLCNetV2:
        """The model that export, infer and predict run: this one, re-parameterised, as
        PaddleClas exports it (the BatchNorm statistics are folded in: from then on the
        depthwise convs compute as in eval mode)."""
        self.re_parameterize()
        return self


# --- pretrained weights (PaddleClas 2.6 model zoo; top-1 from its PP-LCNetV2 docs) ---------------

WEIGHTS = weights_table(
    MODEL_ZOO_URL + "legendary_models/{}_pretrained.pdparams",
    {
        "PPLCNetV2_small": None,
        "PPLCNetV2_base": 0.7704,
        "PPLCNetV2_large": None,
        "PPLCNetV2_base_ssld": 0.8007,
    },
)

# --- registered names ---------------------------------------------------------------------------

VARIANTS = {
    "PPLCNetV2_small": dict(scale=0.75, depths=(2, 2, 4, 2), dropout_prob=0.2),
    "PPLCNetV2_base": dict(scale=1.0, depths=(2, 2, 6, 2), dropout_prob=0.2),
    "PPLCNetV2_large": dict(scale=1.25, depths=(2, 2, 8, 2), dropout_prob=0.2),
}

BUILDERS = builders(PPLCNetV2, VARIANTS, WEIGHTS)
