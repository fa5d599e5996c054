"""An exponential moving average of a model's weights (PaddleClas's ``EMA``)."""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import numpy as np
import paddle


class ModelEMA:
    """``ema = decay * ema + (1 - decay) * weights`` for every floating state
    entry (BatchNorm statistics included), updated after each optimizer step."""

    def __init__(self, model: paddle.nn.Layer, decay: float) -> None:
        self.decay = decay
        self.state = {name: value.detach().clone() for name, value in model.state_dict().items()}

    @paddle.no_grad()
    def update(self, model: paddle.nn.Layer) -> None:
        for name, value in model.state_dict().items():
            average = self.state[name]
            if paddle.is_floating_point(average):
                paddle.assign(average * self.decay + value.detach() * (1.0 - self.decay), output=average)
            else:
                paddle.assign(value.detach(), output=average)

    def arrays(self) -> dict[str, np.ndarray]:
        """The averaged weights as NumPy arrays (what ``.pdema`` files hold)."""
        return {name: value.numpy() for name, value in self.state.items()}

    def load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        missing = sorted(set(self.state) - set(arrays))
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} entries of the model, e.g. {missing[:3]}")
        for name, average in self.state.items():
            average.set_value(np.asarray(arrays[name], dtype=average.numpy().dtype))

    @contextlib.contextmanager
    def applied(self, model: paddle.nn.Layer) -> Iterator[paddle.nn.Layer]:
        """Run ``model`` with the averaged weights inside the block, then restore its own."""
        own = {name: value.detach().clone() for name, value in model.state_dict().items()}
        model.set_state_dict(self.state)
        try:
            yield model
        finally:
            model.set_state_dict(own)
