"""NormalizeImage and ToCHWImage: the last steps, which also run vectorised on whole batches."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from corolla.plugins.transforms._params import channel_values, choice, number

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class NormalizeImage:
    """``(img * scale - mean) / std`` per channel, as float32 (float16 with ``output_fp16``).

    ``order`` is the layout of the input: ``"chw"`` (PaddleClas's default) or
    ``""``/``"hwc"``, which PaddleClas configs use after DecodeImage.
    ``channel_num: 4`` appends a zero channel. ``scale`` may be a fraction
    string such as ``"1.0/255.0"``. Computed as ``img * (scale / std) -
    mean / std`` in float32, the same arithmetic for one image and for a
    batch, so both give identical arrays.
    """

    def __init__(self, scale: Any = None, mean: Any = None, std: Any = None, order: str = "chw",
                 output_fp16: bool = False, channel_num: int = 3) -> None:
        scale_value = number(scale, "scale") if scale is not None else 1.0 / 255.0
        mean_values = np.array(channel_values(mean if mean is not None else IMAGENET_MEAN, "mean"), dtype=np.float64)
        std_values = np.array(channel_values(std if std is not None else IMAGENET_STD, "std"), dtype=np.float64)
        if np.any(std_values == 0):
            raise ValueError(f"std: expected non-zero values, found {std!r}")
        self.order = choice(order, "order", ("chw", "hwc", ""))
        self.channel_num = choice(channel_num, "channel_num", (3, 4))
        self.dtype = np.float16 if output_fp16 else np.float32
        self.layout = "chw" if self.order == "chw" else "hwc"
        self._gain = (scale_value / std_values).astype(np.float32)[:, None, None]
        self._offset = (-mean_values / std_values).astype(np.float32)[:, None, None]
        self._on_device: dict[str, tuple[Any, Any]] = {}  # place -> gain and offset Tensors

    #: apply_batch also takes the list of per-image results and stacks them itself (one copy fewer)
    takes_samples = True

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return self.apply_batch([img])[0]

    def apply_batch(self, batch: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Normalise ``N`` images at once: an NHWC or NCHW array (as ``order`` says), or a list of same-shape images.

        Image by image into one channel-first float32 buffer: the cast, the
        scale and the shift of one image all run while it is in cache, about
        twice as fast as three passes over the whole batch. Flipped or
        cropped views are read in place, never copied first. For HWC input
        the result is an NHWC view of that buffer, so the final move to NCHW
        costs no copy.
        """
        channel_axis = 0 if self.layout == "chw" else 2
        shape = np.shape(batch[0]) if len(batch) else ()
        if len(shape) != 3 or shape[channel_axis] != 3:
            raise ValueError(f"expected {self.layout.upper()} images with 3 channels, found shape {shape}")
        height, width = shape[1:] if self.layout == "chw" else shape[:2]
        out = np.empty((len(batch), self.channel_num, height, width), np.float32)
        for image, target in zip(batch, out):
            rgb = target[:3]
            rgb[...] = image if self.layout == "chw" else image.transpose(2, 0, 1)
            rgb *= self._gain
            rgb += self._offset
        if self.channel_num == 4:
            out[:, 3] = 0.0
        if self.layout == "hwc":
            out = out.transpose(0, 2, 3, 1)
        return out.astype(self.dtype, copy=False)

    def apply_device(self, batch: Any, draws: Any = None) -> Any:
        """:meth:`apply_batch` on a float32 paddle Tensor of raw values, on its device (the same
        float32 arithmetic, so the same numbers; a float16 result may differ in its last bit
        where Paddle's cast rounds otherwise than NumPy's; :mod:`corolla.data.device`)."""
        import paddle

        channel_axis = 1 if self.layout == "chw" else 3
        if len(batch.shape) != 4 or batch.shape[channel_axis] != 3:
            raise ValueError(f"expected {self.layout.upper()} images with 3 channels, found shape {batch.shape[1:]}")
        gain, offset = self._constants(batch.place, channel_axis)
        out = batch * gain + offset
        if self.channel_num == 4:
            zero = out[:, :1] if self.layout == "chw" else out[..., :1]
            out = paddle.concat([out, paddle.zeros_like(zero)], axis=channel_axis)
        return out.astype("float16") if self.dtype == np.float16 else out

    def _constants(self, place: Any, channel_axis: int) -> tuple[Any, Any]:
        """Gain and offset as Tensors on ``place``, made once (a copy to the GPU waits for it)."""
        import paddle

        if str(place) not in self._on_device:
            shape = [1, 1, 1, 1]
            shape[channel_axis] = 3
            self._on_device[str(place)] = tuple(paddle.to_tensor(v.reshape(shape), place=place)
                                                for v in (self._gain, self._offset))
        return self._on_device[str(place)]


class ToCHWImage:
    """HWC -> CHW."""

    layout = "hwc"
    output_layout = "chw"

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return img.transpose(2, 0, 1)

    def apply_batch(self, batch: np.ndarray) -> np.ndarray:
        return batch.transpose(0, 3, 1, 2)

    def apply_device(self, batch: Any, draws: Any = None) -> Any:
        return batch.transpose([0, 3, 1, 2])
