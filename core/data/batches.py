"""What the loader's batch makers (a thread or worker processes) hand to the consumer."""
from __future__ import annotations

from typing import Any, Sequence

import attrs
import numpy as np

#: marks an unreadable-image error on its way back from a worker
UNREADABLE = "\x01"


@attrs.frozen
class Failure:
    """A sample that could not be made; ``skippable`` for unreadable images."""

    index: int
    message: str
    skippable: bool


@attrs.frozen
class Batch:
    """What a worker hands back: arrays, the skipped indices, and a problem if there was one;
    ``draws``: the per-image draws of the ops left to the device (``[N, R]``), if any."""

    images: np.ndarray | None
    labels: np.ndarray | None
    skipped: tuple[int, ...] = ()
    note: str = ""  # the first skip reason, or the error when images is None
    failed: bool = False
    draws: np.ndarray | None = None

    def encode(self) -> tuple[Any, ...]:
        """For paddle.io.DataLoader's workers: arrays (it rejects empty ones) become Tensors on the
        loader's device; the status stays plain Python values, read without waiting for the device."""
        dummy = np.zeros(1, np.float32)
        arrays = (self.images, self.labels, self.draws)
        return (*(a if a is not None and a.size else dummy for a in arrays),
                int(self.failed), tuple(self.skipped), self.note)

    @classmethod
    def decode(cls, fields: Sequence[Any]) -> tuple[Batch, Any, Any, Any]:
        """The batch's status, and its images, labels and draws (paddle Tensors)."""
        images, labels, draws, failed, skipped, note = fields
        real = not failed and len(images.shape) == 4
        if not real:
            images = labels = draws = None
        return cls(None, None, tuple(int(i) for i in skipped), note, bool(failed)), images, labels, draws


def as_tensor(array: np.ndarray) -> Any:
    """``array`` copied into a paddle Tensor (about 0.5 ms per MB).

    Not shared through DLPack: Paddle 3 frees a tensor that wraps NumPy memory with a
    deleter that holds one of Paddle's locks while it waits for the GIL. A compiled step
    (``Global.to_static``) frees its inputs on Paddle's own threads, so the main thread,
    holding the GIL while it wrapped the next batch, waited for that lock: training hung."""
    import paddle

    return paddle.to_tensor(array)
