"""Moving between token sequences, feature maps and windows, for the transformer families.

``[N, H * W, C]`` tokens and ``[N, C, H, W]`` maps (:func:`tokens_to_map`,
:func:`map_to_tokens`, :class:`TokensToMap`, a layer so that a stage's map is a layer output
``return_stages`` can collect); ``[N, H, W, C]`` maps and windows of tokens
(:func:`window_partition`, :func:`window_merge`), with what Swin's window attention needs
(:func:`relative_position_index`, :func:`shifted_window_mask`).
"""
from __future__ import annotations

import functools

import numpy as np
import paddle
from paddle import nn


def tokens_to_map(tokens: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
    """``[N, H * W, C]`` tokens as an ``[N, C, H, W]`` feature map."""
    return tokens.transpose([0, 2, 1]).reshape([-1, tokens.shape[2], height, width])


def window_partition(x: paddle.Tensor, window: int | tuple[int, int]) -> paddle.Tensor:
    """``[N, H, W, C]`` -> ``[N * windows, wh * ww, C]``: the ``window`` (a side, or a
    ``(wh, ww)`` rectangle dividing H and W) windows in row-major order, each's tokens too."""
    wh, ww = (window, window) if isinstance(window, int) else window
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    x = x.reshape([-1, height // wh, wh, width // ww, ww, channels])
    return x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, wh * ww, channels])


def window_merge(windows: paddle.Tensor, window: int | tuple[int, int], height: int, width: int) -> paddle.Tensor:
    """The inverse of :func:`window_partition`: ``[N * windows, wh * ww, C]`` -> ``[N, H, W, C]``."""
    wh, ww = (window, window) if isinstance(window, int) else window
    channels = windows.shape[-1]
    x = windows.reshape([-1, height // wh, width // ww, wh, ww, channels])
    return x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, height, width, channels])


def relative_position_index(window: int) -> np.ndarray:
    """``[window², window²]`` int64: for each pair of positions in a window, the row of their
    relative offset in a ``(2 * window - 1)²``-row table (offsets in row-major order)."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    relative = (coords[:, :, None] - coords[:, None, :]) + (window - 1)
    return (relative[0] * (2 * window - 1) + relative[1]).astype(np.int64)


@functools.lru_cache(maxsize=64)
def shifted_window_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
    """The additive attention mask of shifted windows: ``[windows, window², window²]`` float32,
    -100 between tokens that the cyclic shift brought together from different image regions,
    else 0 (Swin Transformer). ``height`` and ``width`` are multiples of ``window``."""
    regions = np.zeros((1, height, width, 1), dtype=np.float32)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for label, (rows, cols) in enumerate((r, c) for r in bands for c in bands):
        regions[:, rows, cols, :] = label
    regions = regions.reshape(1, height // window, window, width // window, window)
    regions = regions.transpose(0, 1, 3, 2, 4).reshape(-1, window * window)
    different = regions[:, None, :] != regions[:, :, None]
    return np.where(different, np.float32(-100.0), np.float32(0.0))


def map_to_tokens(x: paddle.Tensor) -> paddle.Tensor:
    """``[batch, channels, height, width]`` -> ``[batch, height * width, channels]``."""
    return x.flatten(2).transpose([0, 2, 1])


class TokensToMap(nn.Layer):
    """:func:`tokens_to_map` as a layer, so that a stage's feature map is a layer output
    (what ``return_stages`` collects)."""

    def forward(self, tokens: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        return tokens_to_map(tokens, height, width)
