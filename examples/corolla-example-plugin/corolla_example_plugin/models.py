"""TinyConvNet: three convolution stages and a linear classifier, with published-weights metadata."""
from __future__ import annotations

import functools
from typing import Sequence, Union

import paddle
from paddle import nn

from corolla.api import describe_weights, load_pretrained, weights_table

#: Where the weights are published, their ImageNet top-1 (None: not measured) and input size.
#: ``pretrained: True`` downloads the file into corolla's cache; offline, the error names the
#: file to put there. (This example publishes nothing: the URL shows the form.)
WEIGHTS = weights_table("https://example.com/corolla-example-plugin/{}_pretrained.pdparams",
                        {"TinyConvNet": None}, input_size=32)


class ConvBNReLU(nn.Sequential):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__(
            nn.Conv2D(channels_in, channels_out, 3, stride=stride, padding=1, bias_attr=False),
            nn.BatchNorm2D(channels_out),
            nn.ReLU(),
        )


class TinyConvNetModel(nn.Layer):
    """Three stages of ``width``, ``2 width`` and ``4 width`` channels (the last two halve the
    image), global average pooling and a linear classifier."""

    def __init__(self, class_num: int, width: int, return_stages: Sequence[int]) -> None:
        super().__init__()
        widths = [3, width, 2 * width, 4 * width]
        self.stages = nn.LayerList([ConvBNReLU(widths[i], widths[i + 1], 1 if i == 0 else 2) for i in range(3)])
        self.fc = nn.Linear(widths[-1], class_num)
        self.return_stages = list(return_stages)

    def forward(self, images: paddle.Tensor) -> Union[paddle.Tensor, dict]:
        features = {}
        x = images
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.return_stages:
                features[f"stage{index}"] = x
        logits = self.fc(x.mean(axis=[2, 3]))
        return {"logits": logits, **features} if self.return_stages else logits


def TinyConvNet(*, class_num: int = 1000, width: int = 16, pretrained: Union[bool, str] = False,
                return_stages: Union[bool, Sequence[int], None] = None) -> TinyConvNetModel:
    """A tiny convolutional classifier for examples and tests.

    ``return_stages``: True or stage indices (0, 1, 2); forward then returns
    ``{"logits", "stage<i>"}``. ``pretrained``: False, True (the published file), a path or a URL.
    """
    if width < 1:
        raise ValueError(f"width: expected an integer >= 1, found {width}")
    stages = [0, 1, 2] if return_stages is True else list(return_stages or [])
    if any(not isinstance(i, int) or not 0 <= i < 3 for i in stages):
        raise ValueError(f"return_stages: expected True or stage indices 0, 1, 2; found {return_stages!r}")
    model = TinyConvNetModel(class_num, width, stages)
    return load_pretrained(model, pretrained, name="TinyConvNet", table=WEIGHTS)


#: `corolla plugins show TinyConvNet` prints the published weights with this.
TinyConvNet.corolla_details = functools.partial(describe_weights, "TinyConvNet", WEIGHTS)
