"""Mixed precision: autocast and loss scaling from the ``AMP`` section, or plain float32.

float16 scales the loss (``paddle.amp.GradScaler``); bfloat16 has float32's range and
needs no scaling. Level O1 casts op by op; O2 keeps the weights in low precision with
float32 master copies. The APIs used are the same on Paddle 2.6 and 3.x.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, ContextManager

import numpy as np
import paddle

from corolla.config.sections import AmpSection


class Precision:
    """How the train step runs its forward pass and applies gradients.

    Paddle's autocast and loss scaler work on GPU (and XPU) only; on CPU they
    would silently do nothing, so the engine says so once and trains in float32.
    """

    def __init__(self, amp: AmpSection | None, device: str) -> None:
        self.amp = amp
        if amp is not None and device == "cpu":
            warnings.warn(
                "AMP: Paddle has no float16/bfloat16 training kernels on CPU, so mixed precision "
                "has no effect there; training runs in float32",
                UserWarning,
                stacklevel=2,
            )
        self.enabled = amp is not None and device != "cpu"
        self.dtype = (amp.dtype or "float16") if amp is not None else "float32"
        self.scaler = (
            _GradScaler(init_loss_scaling=amp.scale_loss, use_dynamic_loss_scaling=amp.use_dynamic_loss_scaling)
            if self.enabled and self.dtype == "float16"
            else None
        )

    def decorate(self, model: paddle.nn.Layer, optimizer: Any) -> tuple[paddle.nn.Layer, Any]:
        """Level O2 keeps the weights in low precision (with float32 master copies)."""
        if self.enabled and self.amp.level == "O2":
            return paddle.amp.decorate(models=model, optimizers=optimizer, level="O2", dtype=self.dtype)
        return model, optimizer

    def autocast(self, *, training: bool = True) -> ContextManager:
        """The forward-pass context; evaluation is autocast only with ``use_fp16_test``."""
        if not self.enabled or (not training and not self.amp.use_fp16_test):
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(
            enable=True, level=self.amp.level, dtype=self.dtype, use_promote=self.amp.use_promote
        )

    def backward(self, loss: paddle.Tensor) -> None:
        """Add the gradients of ``loss`` (scaled by the loss scaler, if any) to the parameters'."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: Any) -> None:
        """Apply the gradients gathered since the last step (unscaled), then clear them."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()
        optimizer.clear_grad()

    def backward_and_step(self, loss: paddle.Tensor, optimizer: Any) -> None:
        self.backward(loss)
        self.step(optimizer)

    def state(self) -> dict[str, Any]:
        """The loss scaler's state (dynamic scale and counters), for checkpoints."""
        if self.scaler is None:
            return {}
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.scaler.state_dict().items()}

    def load_state(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(loadable_scaler_state(state))


def loadable_scaler_state(state: dict[str, Any]) -> dict[str, Any]:
    """A saved :meth:`Precision.state` as ``GradScaler.load_state_dict`` reads it: the scale as a
    one-element array (it reads ``state["scale"][0]``), whatever shape the checkpoint kept."""
    return {**state, "scale": np.asarray(state["scale"], dtype=np.float32).reshape([1])}


class _GradScaler(paddle.amp.GradScaler):
    """Paddle's GradScaler, whose dynamic update reads the scale with ``float()``: on a shape-[1]
    Tensor NumPy 2.5 refuses that (Paddle 2.6), so the update sees the scale as a 0-d Tensor."""

    def _update(self) -> None:
        if not self._enable:
            return
        shape = self._scale.shape
        self._scale = self._scale.reshape([])
        try:
            super()._update()
        finally:
            self._scale = self._scale.reshape(shape)
