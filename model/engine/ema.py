"""Exponential moving average of the weights (``train.enable_ema``, ``train.ema.*``)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEMA", "unwrap"]


class ModelEMA:
    """Keeps ``ema = decay * ema + (1 - decay) * model`` every ``every_n_steps`` optimiser steps.

    The EMA copy lives on the model's device, or on the CPU with ``cpu_offload``. Buffers (BatchNorm
    statistics) are copied, not averaged. With ``warmup_steps`` (``train.ema.warmup_steps``) the decay
    ramps up as ``decay * (1 - exp(-updates / warmup_steps))``: early on the average follows the
    weights closely instead of dragging the random initialisation along for thousands of steps.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.999,
        every_n_steps: int = 1,
        cpu_offload: bool = False,
        warmup_steps: int = 0,
    ):
        self.module = copy.deepcopy(unwrap(model)).eval()
        if cpu_offload:
            self.module.to("cpu")
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = float(decay)
        self.every = max(1, int(every_n_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self.updates = 0

    def current_decay(self) -> float:
        if self.warmup_steps <= 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-self.updates / self.warmup_steps))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if step % self.every:
            return
        self.updates += 1
        decay = self.current_decay()
        source = unwrap(model).state_dict()
        for name, value in self.module.state_dict().items():
            new = source[name].detach().to(value.device)
            if value.dtype.is_floating_point:
                value.mul_(decay).add_(new.to(value.dtype), alpha=1.0 - decay)
            else:
                value.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state.get("updates", 0))


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP/FSDP wrappers."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
