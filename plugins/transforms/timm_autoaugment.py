"""TimmAutoAugment: timm's RandAugment / AugMix / AutoAugment, configured by a string.

``config_str`` is dash-separated, as in timm: ``rand-m9-mstd0.5-inc1`` is
RandAugment at magnitude 9 with magnitude noise of std 0.5 and the
"increasing" operation set; sections: ``m`` magnitude, ``n`` layers, ``w``
weight set, ``mstd`` magnitude std, ``inc`` increasing ops. ``augmix-m3-w3-d-1``
is AugMix (``m`` severity, ``w`` width, ``d`` depth, ``a`` alpha, ``mstd``).
``original`` / ``originalr`` (optionally after ``auto-``) is the ImageNet
AutoAugment policy with timm's magnitude scaling.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from corolla.plugins.transforms import pil_ops
from corolla.plugins.transforms._params import channel_values, number, pil_filter, probability
from corolla.plugins.transforms.autoaugment import IMAGENET_POLICY
from corolla.api import generator

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
MAX_LEVEL = 10.0


def _signed(value: float) -> float:
    """``-value`` with probability 0.5."""
    return -value if generator().random() > 0.5 else value


# level (0..10) -> operation arguments, as timm's LEVEL_TO_ARG
def _rotate_arg(level: float, _: dict) -> tuple:
    return (_signed(level / MAX_LEVEL * 30.0),)


def _enhance_arg(level: float, _: dict) -> tuple:
    return (level / MAX_LEVEL * 1.8 + 0.1,)


def _enhance_increasing_arg(level: float, _: dict) -> tuple:
    return (1.0 + _signed(level / MAX_LEVEL * 0.9),)


def _shear_arg(level: float, _: dict) -> tuple:
    return (_signed(level / MAX_LEVEL * 0.3),)


def _translate_abs_arg(level: float, hparams: dict) -> tuple:
    return (_signed(level / MAX_LEVEL * float(hparams["translate_const"])),)


def _translate_rel_arg(level: float, hparams: dict) -> tuple:
    return (_signed(level / MAX_LEVEL * hparams.get("translate_pct", 0.45)),)


def _posterize_arg(level: float, _: dict) -> tuple:
    return (int(level / MAX_LEVEL * 4),)


def _posterize_increasing_arg(level: float, hparams: dict) -> tuple:
    return (4 - _posterize_arg(level, hparams)[0],)


def _posterize_original_arg(level: float, _: dict) -> tuple:
    return (int(level / MAX_LEVEL * 4) + 4,)


def _solarize_arg(level: float, _: dict) -> tuple:
    return (int(level / MAX_LEVEL * 256),)


def _solarize_increasing_arg(level: float, hparams: dict) -> tuple:
    return (256 - _solarize_arg(level, hparams)[0],)


def _solarize_add_arg(level: float, _: dict) -> tuple:
    return (int(level / MAX_LEVEL * 110),)


def _translate_x_rel(img: Image.Image, pct: float, **kwargs: Any) -> Image.Image:
    return pil_ops.translate_x(img, pct * img.size[0], **kwargs)


def _translate_y_rel(img: Image.Image, pct: float, **kwargs: Any) -> Image.Image:
    return pil_ops.translate_y(img, pct * img.size[1], **kwargs)


#: operation name -> (image function, level -> arguments or None)
OPERATIONS: dict[str, tuple[Callable[..., Image.Image], Callable[[float, dict], tuple] | None]] = {
    "AutoContrast": (pil_ops.auto_contrast, None),
    "Equalize": (pil_ops.equalize, None),
    "Invert": (pil_ops.invert, None),
    "Rotate": (pil_ops.rotate, _rotate_arg),
    "Posterize": (pil_ops.posterize, _posterize_arg),
    "PosterizeIncreasing": (pil_ops.posterize, _posterize_increasing_arg),
    "PosterizeOriginal": (pil_ops.posterize, _posterize_original_arg),
    "Solarize": (pil_ops.solarize, _solarize_arg),
    "SolarizeIncreasing": (pil_ops.solarize, _solarize_increasing_arg),
    "SolarizeAdd": (pil_ops.solarize_add, _solarize_add_arg),
    "Color": (pil_ops.color, _enhance_arg),
    "ColorIncreasing": (pil_ops.color, _enhance_increasing_arg),
    "Contrast": (pil_ops.contrast, _enhance_arg),
    "ContrastIncreasing": (pil_ops.contrast, _enhance_increasing_arg),
    "Brightness": (pil_ops.brightness, _enhance_arg),
    "BrightnessIncreasing": (pil_ops.brightness, _enhance_increasing_arg),
    "Sharpness": (pil_ops.sharpness, _enhance_arg),
    "SharpnessIncreasing": (pil_ops.sharpness, _enhance_increasing_arg),
    "ShearX": (pil_ops.shear_x, _shear_arg),
    "ShearY": (pil_ops.shear_y, _shear_arg),
    "TranslateX": (pil_ops.translate_x, _translate_abs_arg),
    "TranslateY": (pil_ops.translate_y, _translate_abs_arg),
    "TranslateXRel": (_translate_x_rel, _translate_rel_arg),
    "TranslateYRel": (_translate_y_rel, _translate_rel_arg),
}
_GEOMETRIC = {pil_ops.rotate, pil_ops.shear_x, pil_ops.shear_y, pil_ops.translate_x, pil_ops.translate_y,
              _translate_x_rel, _translate_y_rel}

RAND_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
                   "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
RAND_INCREASING_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
                              "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
                              "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
                              "TranslateYRel")
AUGMIX_TRANSFORMS = ("AutoContrast", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
                     "SharpnessIncreasing", "Equalize", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
                     "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
#: timm's weight set 0 for ``w0``
RAND_CHOICE_WEIGHTS = {"Rotate": 0.3, "ShearX": 0.2, "ShearY": 0.2, "TranslateXRel": 0.1, "TranslateYRel": 0.1,
                       "Color": 0.025, "Sharpness": 0.025, "AutoContrast": 0.025, "Solarize": 0.005,
                       "SolarizeAdd": 0.005, "Contrast": 0.005, "Brightness": 0.005, "Equalize": 0.005,
                       "Posterize": 0.0, "Invert": 0.0}
#: PaddleClas's ImageNetPolicy names -> timm operation names (``original`` / ``originalr`` policies)
_POLICY_NAMES = {"posterize": "PosterizeOriginal", "rotate": "Rotate", "solarize": "Solarize",
                 "autocontrast": "AutoContrast", "equalize": "Equalize", "color": "Color", "contrast": "Contrast",
                 "invert": "Invert", "sharpness": "Sharpness", "shearX": "ShearX"}


class AugmentOp:
    """One operation with a probability and a magnitude (0..10), optionally noisy."""

    def __init__(self, name: str, prob: float, magnitude: float, hparams: dict) -> None:
        self.function, self.level_to_args = OPERATIONS[name]
        self.name, self.prob, self.magnitude, self.hparams = name, prob, magnitude, hparams
        self.magnitude_std = hparams.get("magnitude_std", 0.0)

    def __call__(self, image: Image.Image) -> Image.Image:
        rng = generator()
        if self.prob < 1.0 and rng.random() > self.prob:
            return image
        magnitude = self.magnitude
        if self.magnitude_std > 0:
            magnitude = rng.normal(magnitude, self.magnitude_std)
        magnitude = min(MAX_LEVEL, max(0.0, magnitude))
        args = self.level_to_args(magnitude, self.hparams) if self.level_to_args else ()
        if self.function not in _GEOMETRIC:
            return self.function(image, *args)
        resample = self.hparams.get("interpolation")
        if resample is None:
            resample = (Image.BILINEAR, Image.BICUBIC)[int(rng.integers(2))]
        return self.function(image, *args, resample=resample, fill=self.hparams["img_mean"])


def _sections(config_str: str) -> list[tuple[str, str]]:
    """``key``/``value`` pairs of the sections after the first one (timm splits at the first digit)."""
    pairs = []
    for section in config_str.split("-")[1:]:
        parts = re.split(r"(\d.*)", section)
        if len(parts) < 2:
            continue
        pairs.append((parts[0], parts[1]))
    return pairs


class _RandAugment:
    def __init__(self, ops: Sequence[AugmentOp], num_layers: int, weights: np.ndarray | None) -> None:
        self.ops, self.num_layers, self.weights = list(ops), num_layers, weights

    def __call__(self, image: Image.Image) -> Image.Image:
        chosen = generator().choice(len(self.ops), self.num_layers, replace=self.weights is None, p=self.weights)
        for index in chosen:
            image = self.ops[int(index)](image)
        return image


class _AugMix:
    def __init__(self, ops: Sequence[AugmentOp], alpha: float, width: int, depth: int) -> None:
        self.ops, self.alpha, self.width, self.depth = list(ops), alpha, width, depth

    def __call__(self, image: Image.Image) -> Image.Image:
        rng = generator()
        weights = rng.dirichlet([self.alpha] * self.width).astype(np.float32)
        blend = float(rng.beta(self.alpha, self.alpha))
        mixed = np.zeros((image.size[1], image.size[0], len(image.getbands())), np.float32)
        for weight in weights:
            depth = self.depth if self.depth > 0 else int(rng.integers(1, 4))
            branch = image
            for index in rng.choice(len(self.ops), depth, replace=True):
                branch = self.ops[int(index)](branch)
            mixed += weight * np.asarray(branch, dtype=np.float32)
        np.clip(mixed, 0, 255, out=mixed)
        return Image.blend(image, Image.fromarray(mixed.astype(np.uint8)), blend)


class _PolicyAugment:
    def __init__(self, policy: Sequence[Sequence[AugmentOp]]) -> None:
        self.policy = [list(sub) for sub in policy]

    def __call__(self, image: Image.Image) -> Image.Image:
        for op in self.policy[int(generator().integers(len(self.policy)))]:
            image = op(image)
        return image


def _rand_augment(config_str: str, hparams: dict) -> _RandAugment:
    magnitude, num_layers, weight_idx, names = MAX_LEVEL, 2, None, RAND_TRANSFORMS
    for key, value in _sections(config_str):
        if key == "mstd":
            hparams.setdefault("magnitude_std", float(value))
        elif key == "inc":
            names = RAND_INCREASING_TRANSFORMS if int(value) else RAND_TRANSFORMS
        elif key == "m":
            magnitude = int(value)
        elif key == "n":
            num_layers = int(value)
        elif key == "w":
            weight_idx = int(value)
        else:
            raise ValueError(f"config_str {config_str!r}: unknown RandAugment section {key!r} (m, n, w, mstd, inc)")
    weights = None
    if weight_idx is not None:
        if weight_idx != 0:
            raise ValueError(f"config_str {config_str!r}: only weight set w0 exists")
        weights = np.array([RAND_CHOICE_WEIGHTS.get(n, 0.0) for n in names])
        weights = weights / weights.sum()
    ops = [AugmentOp(name, 0.5, magnitude, hparams) for name in names]
    return _RandAugment(ops, num_layers, weights)


def _augmix(config_str: str, hparams: dict) -> _AugMix:
    magnitude, width, depth, alpha = 3, 3, -1, 1.0
    for key, value in _sections(config_str):
        if key == "mstd":
            hparams.setdefault("magnitude_std", float(value))
        elif key == "m":
            magnitude = int(value)
        elif key == "w":
            width = int(value)
        elif key == "d":
            depth = int(value)
        elif key == "a":
            alpha = float(value)
        else:
            raise ValueError(f"config_str {config_str!r}: unknown AugMix section {key!r} (m, w, d, a, mstd)")
    return _AugMix([AugmentOp(name, 1.0, magnitude, hparams) for name in AUGMIX_TRANSFORMS], alpha, width, depth)


def _auto_augment(config_str: str, hparams: dict) -> _PolicyAugment:
    sections = config_str.split("-")
    if sections[0] == "auto":
        sections = sections[1:] or ["original"]
    policy_name = sections[0]
    if policy_name not in ("original", "originalr"):
        raise ValueError(f"config_str {config_str!r}: AutoAugment policies are 'original' and 'originalr'")
    for key, value in _sections("-".join(sections)):
        if key != "mstd":
            raise ValueError(f"config_str {config_str!r}: unknown AutoAugment section {key!r} (mstd)")
        hparams.setdefault("magnitude_std", float(value))
    names = dict(_POLICY_NAMES)
    if policy_name == "originalr":
        names["posterize"] = "PosterizeIncreasing"
    return _PolicyAugment([[AugmentOp(names[name], prob, level, hparams) for prob, name, level in sub]
                           for sub in IMAGENET_POLICY])


class TimmAutoAugment:
    """With probability ``prob``, apply timm's RandAugment, AugMix or AutoAugment as
    ``config_str`` says (see the module docstring); ``config_str: null`` applies nothing.

    ``img_size`` sets the absolute translation range (45% of its short side),
    ``mean`` the fill colour, ``interpolation`` the filter of geometric
    operations (``random``: bilinear or bicubic per call).
    """

    def __init__(self, prob: Any = 1.0, config_str: str | None = "rand-m9-mstd0.5-inc1", interpolation: str | None = "bicubic",
                 img_size: Any = 224, mean: Any = IMAGENET_DEFAULT_MEAN) -> None:
        self.prob = probability(prob, "prob")
        short_side = min(img_size) if isinstance(img_size, (list, tuple)) else number(img_size, "img_size")
        hparams: dict[str, Any] = {
            "translate_const": int(short_side * 0.45),
            "img_mean": tuple(min(255, round(255 * x)) for x in channel_values(mean, "mean")),
        }
        if interpolation and interpolation != "random":
            hparams["interpolation"] = pil_filter(interpolation, "interpolation")
        if config_str is None:  # FasterNet_T0's config: no automatic augmentation
            self.augment = None
        elif not isinstance(config_str, str):
            raise ValueError(f"config_str: expected a string like 'rand-m9-mstd0.5-inc1' or null, found {config_str!r}")
        elif config_str.startswith("rand"):
            self.augment = _rand_augment(config_str, hparams)
        elif config_str.startswith("augmix"):
            hparams["translate_pct"] = 0.3
            self.augment = _augmix(config_str, hparams)
        elif config_str.startswith(("auto", "original")):
            self.augment = _auto_augment(config_str, hparams)
        else:
            raise ValueError(f"config_str {config_str!r}: expected it to start with 'rand', 'augmix', 'auto' or 'original'")

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.augment is None or generator().random() >= self.prob:
            return img
        return pil_ops.on_array(self.augment, img)
