"""TinyNet (Han et al. 2020, https://arxiv.org/abs/2010.14819): EfficientNet-B0 shrunk in
resolution, depth and width together, weight-compatible with PaddleClas 2.6's ``TinyNet_A``
... ``TinyNet_E``. Built on :class:`._efficientnet.EfficientNet`: a fixed 32-channel stem,
a 1280-channel head, symmetric padding and He-style initialisation."""
from __future__ import annotations

import math

from paddle import nn

from corolla.api import MODEL_ZOO_URL, weights_table
from corolla.plugins.backbones._base import builders
from corolla.plugins.backbones._efficientnet import EfficientNet


class TinyNet(EfficientNet):
    """TinyNet: :class:`EfficientNet` with a 32-channel stem and a 1280-channel head at every
    width, padded symmetrically ("DYNAMIC"). PaddleClas's TinyNet configs (and the published
    weights) set ``override_params``: ``depth_trunc: round`` (fewer blocks than the default
    ``ceil``), ``batch_norm_momentum: 0.9``, ``batch_norm_epsilon: 1e-5`` and a
    ``drop_connect_rate``; without them the net is PaddleClas's default ``TinyNet_*()``.

    ``lr_mult_list`` has 6 values: the stem, then each stage; ``return_stages`` picks stages 0-4.
    """

    def _init_weights(self) -> None:
        """Convolutions normal with std sqrt(2 / fan-in), linear layers uniform in
        +-1/sqrt(fan-in), biases zero, as PaddleClas initialises TinyNet."""
        zeros = nn.initializer.Constant(0.0)
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv2D):
                fan_in = math.prod(layer.weight.shape[1:])
                nn.initializer.Normal(std=math.sqrt(2.0 / fan_in))(layer.weight)
            elif isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.weight.shape[0])
                nn.initializer.Uniform(-bound, bound)(layer.weight)
            else:
                continue
            if layer.bias is not None:
                zeros(layer.bias)


# --- pretrained weights (PaddleClas 2.6 model zoo; no top-1 in its docs) ---------------------

_URL = MODEL_ZOO_URL + "{}_pretrained.pdparams"
WEIGHTS = (
    weights_table(_URL, {"TinyNet_A": None}, input_size=192)
    | weights_table(_URL, {"TinyNet_B": None}, input_size=188)
    | weights_table(_URL, {"TinyNet_C": None}, input_size=184)
    | weights_table(_URL, {"TinyNet_D": None}, input_size=152)
    | weights_table(_URL, {"TinyNet_E": None}, input_size=106)
)

# --- registered names: (width, depth, resolution) per PaddleClas ----------------------------------

_TINY = dict(model=TinyNet, dropout_rate=0.2, padding_type="DYNAMIC", fix_stem=True, num_features=1280)

VARIANTS = {
    "TinyNet_E": dict(_TINY, width_coefficient=0.51, depth_coefficient=0.6, resolution=106),
    "TinyNet_D": dict(_TINY, width_coefficient=0.54, depth_coefficient=0.695, resolution=152),
    "TinyNet_C": dict(_TINY, width_coefficient=0.54, depth_coefficient=0.85, resolution=184),
    "TinyNet_B": dict(_TINY, width_coefficient=0.75, depth_coefficient=1.1, resolution=188),
    "TinyNet_A": dict(_TINY, width_coefficient=1.0, depth_coefficient=1.2, resolution=192),
}

BUILDERS = builders(TinyNet, VARIANTS, WEIGHTS)
