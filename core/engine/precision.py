"""Mixed precision: autocast and loss scaling from the ``AMP`` section, or plain float32."""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, ContextManager

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
            paddle.amp.GradScaler(
                init_loss_scaling=amp.scale_loss, use_dynamic_loss_scaling=amp.use_dynamic_loss_scaling
            )
            if self.enabled
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
            self.scaler.load_state_dict(state)
