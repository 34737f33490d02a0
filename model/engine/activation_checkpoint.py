"""``train.activation_checkpoint``: recompute block activations in the backward pass to save memory.

Applied to the backbone's residual blocks and the encoder's CSP fusion blocks (tensor in, tensor
out), which hold most of the activation memory. As in TAO, it is turned off automatically when
fewer than 4 feature levels are returned and more than one process trains. The recomputation runs
BatchNorm twice per step, so running statistics move slightly faster than without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from model.config.defaults import spec_section

__all__ = ["enable", "wanted"]

_TARGETS = re.compile(r"^(backbone\.res_layers\.\d+\.blocks\.\d+|encoder\.(fpn|pan)_blocks\.\d+)$")


def wanted(spec: Mapping[str, Any], world_size: int) -> bool:
    if not spec_section(spec, "train")["activation_checkpoint"]:
        return False
    levels = len(spec_section(spec, "model")["return_interm_indices"])
    return not (levels < 4 and world_size > 1)


def enable(model: nn.Module) -> int:
    """Wrap the target blocks' forward in ``torch.utils.checkpoint``; returns how many were wrapped."""
    count = 0
    for name, module in model.named_modules():
        if _TARGETS.match(name) and not getattr(module, "_activation_checkpointed", False):
            original = module.forward

            def forward(
                *args: Any, _original: Any = original, _module: nn.Module = module, **kwargs: Any
            ) -> Any:
                if _module.training and torch.is_grad_enabled():
                    return checkpoint(_original, *args, use_reentrant=False, **kwargs)
                return _original(*args, **kwargs)

            module.forward = forward
            module._activation_checkpointed = True
            count += 1
    return count
