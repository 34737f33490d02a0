"""TAO's optimiser for RT-DETR: AdamW with parameter groups, MultiStep or StepLR, linear warmup.

Groups: backbone parameters at ``train.optim.lr_backbone``; every other parameter at ``train.optim.lr``;
no weight decay on norms and biases (1-D parameters). ``train.optim.momentum`` has no effect on AdamW
(as in TAO). The scheduler steps once per epoch (``lr_steps`` / ``lr_step_size`` are epochs, as
Lightning's default interval in TAO); warmup is per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from model.errors import ConfigError


def parameter_groups(model: nn.Module, optim: Mapping[str, Any]) -> list[dict[str, Any]]:
    lr, lr_backbone = float(optim.get("lr", 1e-4)), float(optim.get("lr_backbone", 1e-5))
    wd = float(optim.get("weight_decay", 1e-4))
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_backbone = name.startswith("backbone.")
        no_decay = param.ndim <= 1
        buckets.setdefault((is_backbone, no_decay), []).append(param)
    groups = []
    for (is_backbone, no_decay), params in sorted(buckets.items()):
        groups.append(
            {
                "params": params,
                "lr": lr_backbone if is_backbone else lr,
                "weight_decay": 0.0 if no_decay else wd,
                "name": f"{'backbone' if is_backbone else 'detector'}{'_no_decay' if no_decay else ''}",
            }
        )
    return groups


def build_optimizer(model: nn.Module, optim: Mapping[str, Any]) -> torch.optim.Optimizer:
    name = optim.get("optimizer", "AdamW")
    if name != "AdamW":
        raise ConfigError(
            f"train.optim.optimizer: {name!r} is not available for RT-DETR (TAO's trainer has only AdamW); use AdamW"
        )
    return torch.optim.AdamW(parameter_groups(model, optim), betas=(0.9, 0.999))


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim: Mapping[str, Any]
) -> torch.optim.lr_scheduler.LRScheduler:
    decay = float(optim.get("lr_decay", 0.1))
    if optim.get("lr_scheduler", "MultiStep") == "StepLR":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=int(optim.get("lr_step_size", 1000)), gamma=decay
        )
    steps = [int(s) for s in optim.get("lr_steps", [1000])]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=steps, gamma=decay)


class Warmup:
    """Linear per-step warmup over ``warmup_steps`` applied on top of the epoch scheduler's lr."""

    def __init__(self, optimizer: torch.optim.Optimizer, steps: int):
        self.optimizer = optimizer
        self.steps = max(0, int(steps))

    def apply(self, step: int) -> None:
        if self.steps <= 0 or step > self.steps:
            return
        factor = min(1.0, (step + 1) / self.steps)
        for group in self.optimizer.param_groups:
            group.setdefault("target_lr", group["lr"])
            group["lr"] = group["target_lr"] * factor

    def release(self) -> None:
        for group in self.optimizer.param_groups:
            if "target_lr" in group:
                group["lr"] = group.pop("target_lr")
