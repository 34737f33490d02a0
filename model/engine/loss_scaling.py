"""fp16 training's dynamic loss scale (``train.precision=fp16`` on a GPU).

Under fp16 autocast small gradients underflow to zero, so the loss is multiplied by a scale before
``backward`` (``torch.amp.GradScaler``); the gradients are unscaled before ``clip_grad_norm`` sees
them, and a step whose gradients hold inf/NaN is skipped while the scale shrinks (it grows again
after 2000 clean steps). bf16 and fp32 need none of this: their :class:`LossScaler` passes the
calls straight through. The scale is saved in checkpoints and restored on resume.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["LossScaler"]


class LossScaler:
    """``backward``/``unscale``/``step`` of one training step, scaled when ``enabled``."""

    def __init__(self, enabled: bool, device_type: str = "cuda"):
        self.scaler = torch.amp.GradScaler(device_type) if enabled else None

    @classmethod
    def for_training(cls, precision: str, device: torch.device) -> LossScaler:
        """Scaled exactly when the step runs under fp16 autocast (fp16 on a GPU)."""
        return cls(precision == "fp16" and device.type == "cuda", device.type)

    @property
    def enabled(self) -> bool:
        return self.scaler is not None

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """True gradients from here on (before clipping them)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's step (skipped by the scaler when a gradient is not finite)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
