"""Occlusion augmentations on HWC images: RandomErasing, Cutout, GridMask, HideAndSeek.

They usually follow NormalizeImage in PaddleClas configs, so each also runs
on a whole batch (``apply_batch``, in place, image by image with the same
draws as one by one), which keeps the loader's batch-level normalisation.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from corolla.plugins.transforms._params import channel_values, choice, number, probability
from corolla.api import generator


class _ErasesInPlace:
    """Ops defined by ``erase(img)``, which modifies a writable HWC array in place."""

    layout = "hwc"

    def erase(self, img: np.ndarray) -> None:
        raise NotImplementedError

    def __call__(self, img: np.ndarray) -> np.ndarray:
        img = np.array(img)  # a writable copy: the input may be a view of another array
        self.erase(img)
        return img

    def apply_batch(self, batch: np.ndarray) -> np.ndarray:
        for image in batch:
            self.erase(image)
        return batch


class RandomErasing(_ErasesInPlace):
    """With probability ``EPSILON``, overwrite one random rectangle (Zhong et al. 2017).

    The rectangle's area is a uniform fraction in [``sl``, ``sh``] of the
    image, its aspect ratio uniform in [``r1``, 1/``r1``] (log-uniform with
    ``use_log_aspect``); up to ``attempt`` draws are made until it fits.
    ``mode`` fills it with ``mean`` (``const``), one normal draw per channel
    (``rand``) or per pixel (``pixel``). Parameters may be fraction strings.
    """

    def __init__(self, EPSILON: Any = 0.5, sl: Any = 0.02, sh: Any = 0.4, r1: Any = 0.3, mean: Any = (0.0, 0.0, 0.0),
                 attempt: int = 100, use_log_aspect: bool = False, mode: str = "const") -> None:
        self.EPSILON = probability(EPSILON, "EPSILON")
        self.sl = probability(sl, "sl")
        self.sh = probability(sh, "sh")
        if self.sl > self.sh:
            raise ValueError(f"sl must be <= sh, found sl={sl!r}, sh={sh!r}")
        r1 = number(r1, "r1")
        if r1 <= 0:
            raise ValueError(f"r1: expected a positive aspect ratio, found {r1!r}")
        self.use_log_aspect = bool(use_log_aspect)
        self.r1 = (math.log(r1), math.log(1 / r1)) if self.use_log_aspect else (r1, 1 / r1)
        self.r1 = tuple(sorted(self.r1))
        self.mean = np.array(channel_values(mean, "mean"), dtype=np.float32)
        if not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt: expected an integer >= 1, found {attempt!r}")
        self.attempt = attempt
        self.mode = choice(mode, "mode", ("const", "rand", "pixel"))

    def erase(self, img: np.ndarray) -> None:
        rng = generator()
        if rng.random() > self.EPSILON:
            return
        img_h, img_w, channels = img.shape
        for _ in range(self.attempt):
            target_area = rng.uniform(self.sl, self.sh) * img_h * img_w
            aspect = rng.uniform(*self.r1)
            if self.use_log_aspect:
                aspect = math.exp(aspect)
            h = int(round(math.sqrt(target_area * aspect)))
            w = int(round(math.sqrt(target_area / aspect)))
            if w < img_w and h < img_h:
                top = int(rng.integers(0, img_h - h + 1))
                left = int(rng.integers(0, img_w - w + 1))
                pixels = self._pixels(rng, h, w)
                if channels == 3:
                    img[top:top + h, left:left + w, :] = pixels
                else:  # as PaddleClas: other channel counts erase the first channel only
                    img[top:top + h, left:left + w, 0] = pixels[..., 0]
                return

    def _pixels(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        if self.mode == "pixel":
            return rng.standard_normal((h, w, 3), dtype=np.float32)
        if self.mode == "rand":
            return rng.standard_normal((1, 1, 3), dtype=np.float32)
        return self.mean.reshape(1, 1, 3)


class Cutout(_ErasesInPlace):
    """Fill ``n_holes`` squares of side ``length``, centred uniformly (clipped at the borders), with
    ``fill_value`` (``None``/``"none"``: a random colour per hole) (DeVries & Taylor 2017)."""

    def __init__(self, n_holes: int = 1, length: int = 112, fill_value: Any = (0, 0, 0)) -> None:
        if not isinstance(n_holes, int) or n_holes < 0:
            raise ValueError(f"n_holes: expected an integer >= 0, found {n_holes!r}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length: expected an integer >= 1, found {length!r}")
        self.n_holes = n_holes
        self.length = length
        random_fill = fill_value is None or (isinstance(fill_value, str) and fill_value.lower() == "none")
        self.fill_value = None if random_fill else np.array(channel_values(fill_value, "fill_value"), np.float32)

    def erase(self, img: np.ndarray) -> None:
        rng = generator()
        h, w = img.shape[:2]
        half = self.length // 2
        for _ in range(self.n_holes):
            y, x = int(rng.integers(h)), int(rng.integers(w))
            y1, y2 = max(0, y - half), min(h, y + half)
            x1, x2 = max(0, x - half), min(w, x + half)
            fill = rng.integers(0, 256, 3) if self.fill_value is None else self.fill_value
            img[y1:y2, x1:x2] = fill


class GridMask(_ErasesInPlace):
    """With probability ``prob``, zero a grid of stripes (Chen et al. 2020): period ``d`` drawn from
    [``d1``, ``d2``), stripe width ``round(d * ratio)``, random offset, rotated by up to ``rotate``
    degrees; ``mode: 1`` keeps the stripes instead.

    PaddleClas scales ``prob`` by a training-progress counter that nothing
    updates, so its GridMask never fires; corolla applies ``prob`` as given.
    """

    def __init__(self, d1: int = 96, d2: int = 224, rotate: int = 1, ratio: Any = 0.5, mode: int = 0,
                 prob: Any = 1.0) -> None:
        if not (isinstance(d1, int) and isinstance(d2, int) and 0 < d1 < d2):
            raise ValueError(f"d1, d2: expected integers with 0 < d1 < d2, found d1={d1!r}, d2={d2!r}")
        if not isinstance(rotate, int) or rotate < 1:
            raise ValueError(f"rotate: expected an integer >= 1, found {rotate!r}")
        self.d1, self.d2, self.rotate = d1, d2, rotate
        self.ratio = probability(ratio, "ratio")
        self.mode = choice(mode, "mode", (0, 1))
        self.prob = probability(prob, "prob")

    def erase(self, img: np.ndarray) -> None:
        rng = generator()
        if rng.random() > self.prob:
            return
        mask = self.mask(rng, *img.shape[:2])
        img *= mask[:, :, None].astype(img.dtype)

    def mask(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        """A 0/1 mask of shape ``(h, w)``."""
        hh, ww = int(1.5 * h), int(1.5 * w)
        d = int(rng.integers(self.d1, self.d2))
        width = int(d * self.ratio + 0.5)
        grid = np.ones((hh, ww), np.uint8)
        start_h, start_w = int(rng.integers(d)), int(rng.integers(d))
        for i in range(-1, hh // d + 1):
            s = min(max(d * i + start_h, 0), hh)
            grid[s:min(max(d * i + start_h + width, 0), hh), :] = 0
        for i in range(-1, ww // d + 1):
            s = min(max(d * i + start_w, 0), ww)
            grid[:, s:min(max(d * i + start_w + width, 0), ww)] = 0
        angle = int(rng.integers(self.rotate))
        if angle:
            grid = np.asarray(Image.fromarray(grid).rotate(angle))
        top, left = (hh - h) // 2, (ww - w) // 2
        mask = grid[top:top + h, left:left + w]
        return 1 - mask if self.mode == 1 else mask


class HideAndSeek(_ErasesInPlace):
    """Split the image into square patches of a side drawn from (0, 16, 32, 44, 56) (0: no hiding)
    and zero each patch with probability 0.5 (Singh & Lee 2017)."""

    grid_sizes = (0, 16, 32, 44, 56)
    hide_prob = 0.5

    def erase(self, img: np.ndarray) -> None:
        rng = generator()
        grid = int(rng.choice(self.grid_sizes))
        if grid == 0:
            return
        h, w = img.shape[:2]
        hidden = rng.random((math.ceil(h / grid), math.ceil(w / grid))) <= self.hide_prob
        pixels = np.repeat(np.repeat(hidden, grid, axis=0), grid, axis=1)[:h, :w]
        img[pixels] = 0
