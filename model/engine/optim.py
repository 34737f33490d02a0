"""TAO's optimiser for RT-DETR: AdamW with parameter groups, MultiStep or StepLR (or our FlatCosine),
linear warmup.

Groups: backbone parameters at ``train.optim.lr_backbone``; every other parameter at ``train.optim.lr``;
no weight decay on norms and biases (1-D parameters). ``train.optim.momentum`` has no effect on AdamW
(as in TAO). The scheduler steps once per epoch (``lr_steps`` / ``lr_step_size`` are epochs, as
Lightning's default interval in TAO); warmup is per step. FlatCosine (``engine/schedules.py``) steps
per optimiser step and does its own warm-up.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from model.config.defaults import with_defaults
from model.engine.schedules import FlatCosineLR
from model.errors import ConfigError

__all__ = ["Warmup", "build_optimizer", "build_scheduler", "follow_spec_after_resume", "parameter_groups"]


def parameter_groups(model: nn.Module, optim: Mapping[str, Any]) -> list[dict[str, Any]]:
    optim = with_defaults(optim, "train.optim")
    lr, lr_backbone = float(optim["lr"]), float(optim["lr_backbone"])
    wd = float(optim["weight_decay"])
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
    name = with_defaults(optim, "train.optim")["optimizer"]
    if name != "AdamW":
        raise ConfigError(
            f"train.optim.optimizer: {name!r} is not available for RT-DETR (TAO's trainer has only AdamW); use AdamW"
        )
    return torch.optim.AdamW(parameter_groups(model, optim), betas=(0.9, 0.999))


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim: Mapping[str, Any], total_steps: int = 1
) -> torch.optim.lr_scheduler.LRScheduler:
    """``train.optim.lr_scheduler``; FlatCosine needs the run's ``total_steps`` and owns the warm-up."""
    optim = with_defaults(optim, "train.optim")
    decay = float(optim["lr_decay"])
    if optim["lr_scheduler"] == "FlatCosine":
        return FlatCosineLR(
            optimizer,
            total_steps,
            warmup_steps=int(optim["warmup_steps"]),
            flat_fraction=float(optim["flat_fraction"]),
            min_lr_ratio=float(optim["min_lr_ratio"]),
        )
    if optim["lr_scheduler"] == "StepLR":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(optim["lr_step_size"]), gamma=decay)
    steps = [int(s) for s in optim["lr_steps"]]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=steps, gamma=decay)


def follow_spec_after_resume(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    optim: Mapping[str, Any],
) -> None:
    """After a resume, train with the spec's ``train.optim`` from the resumed epoch on.

    A checkpoint carries the lr, weight decay and schedule it was trained with; loading it would keep
    them, so a resume with a lowered ``lr`` (or a population-based-training clone with a perturbed
    one) would silently train at the old values. AdamW's moments and the epoch and step counters stay
    as checkpointed; lr, lr_backbone, weight_decay, the schedule (lr_steps / lr_step_size, lr_decay)
    and the warmup target follow the spec. Resuming with an unchanged spec changes nothing.
    """
    optim = with_defaults(optim, "train.optim")
    lr, lr_backbone = float(optim["lr"]), float(optim["lr_backbone"])
    wd = float(optim["weight_decay"])
    decay = float(optim["lr_decay"])
    epoch = int(scheduler.last_epoch)
    if isinstance(scheduler, FlatCosineLR):
        scheduler.warmup_steps = max(0, int(optim["warmup_steps"]))
        scheduler.flat_fraction = float(optim["flat_fraction"])
        scheduler.min_lr_ratio = float(optim["min_lr_ratio"])
        factor = scheduler.factor(max(0, epoch))  # last_epoch counts optimiser steps here
    else:
        if isinstance(scheduler, torch.optim.lr_scheduler.StepLR):
            scheduler.step_size = int(optim["lr_step_size"])
            decays = epoch // scheduler.step_size
        else:
            steps = sorted(int(s) for s in optim["lr_steps"])
            scheduler.milestones = Counter(steps)
            decays = bisect_right(steps, epoch)
        scheduler.gamma = decay
        factor = decay**decays
    for group in optimizer.param_groups:
        name = str(group.get("name") or "")  # the parameter group name parameter_groups gave it
        group["initial_lr"] = lr_backbone if name.startswith("backbone") else lr
        group["weight_decay"] = 0.0 if name.endswith("_no_decay") else wd
        group["lr"] = group["initial_lr"] * factor
        group.pop("target_lr", None)  # a warmup in progress restarts from the new lr
    scheduler.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


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
