"""Learning-rate schedules beyond TAO's, and fitting a schedule to a deadline (``train.time_budget``).

``FlatCosineLR`` (``train.optim.lr_scheduler: FlatCosine``) steps once per optimiser step: a linear
warm-up over ``warmup_steps``, the full lr until ``flat_fraction`` of the steps, then a cosine down to
``lr * min_lr_ratio`` at the last step. Its length is a number of steps, so stretching or shortening
the run (a time budget) only changes ``total_steps``.

``DeadlineFit`` decides, after each epoch, how many epochs fit in ``train.time_budget`` at the pace
measured so far; ``rescale_schedule`` then moves the epoch schedule (MultiStep milestones, StepLR
step size, FlatCosine length) in proportion, the way Ultralytics' ``time=`` refits its schedule.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["DeadlineFit", "FlatCosineLR", "rescale_schedule"]


class FlatCosineLR(torch.optim.lr_scheduler.LRScheduler):
    """Warm-up, flat, cosine; ``step()`` once per optimiser step (``last_epoch`` counts steps)."""

    per_step = True

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        *,
        warmup_steps: int = 0,
        flat_fraction: float = 0.5,
        min_lr_ratio: float = 0.05,
        last_epoch: int = -1,
    ):
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self.flat_fraction = float(flat_fraction)
        self.min_lr_ratio = float(min_lr_ratio)
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The lr multiplier of the optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        flat_end = max(self.warmup_steps, int(self.flat_fraction * self.total_steps))
        if step < flat_end:
            return 1.0
        span = max(1, self.total_steps - 1 - flat_end)
        progress = min(1.0, (step - flat_end) / span)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:  # type: ignore[override]
        factor = self.factor(max(0, int(self.last_epoch)))
        return [base * factor for base in self.base_lrs]


def rescale_schedule(
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    planned_epochs: int,
    new_epochs: int,
    lr_steps: Sequence[int],
    lr_step_size: int,
    steps_per_epoch: int,
) -> str:
    """Stretch the schedule written for ``planned_epochs`` to ``new_epochs``; returns what it set.

    MultiStep milestones and the StepLR step size scale by ``new / planned`` (milestones stay
    distinct and at least 1); a decay whose new epoch is already behind takes effect at once.
    FlatCosine's length becomes ``new_epochs * steps_per_epoch`` steps.
    """
    ratio = new_epochs / max(1, planned_epochs)
    if isinstance(scheduler, FlatCosineLR):
        scheduler.total_steps = max(1, new_epochs * steps_per_epoch)
        return f"cosine over {scheduler.total_steps} steps"
    epoch = int(scheduler.last_epoch)
    if isinstance(scheduler, torch.optim.lr_scheduler.StepLR):
        scheduler.step_size = max(1, round(lr_step_size * ratio))
        decays = epoch // scheduler.step_size
        note = f"lr_step_size {scheduler.step_size}"
    elif isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
        milestones = sorted({max(1, round(s * ratio)) for s in lr_steps})
        scheduler.milestones = Counter(milestones)
        decays = bisect_right(milestones, epoch)
        note = f"lr_steps {milestones}"
    else:
        return "schedule unchanged"
    gamma = float(scheduler.gamma)
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        lr = base * gamma**decays
        # a warm-up in progress (engine.optim.Warmup) holds the post-warm-up lr in target_lr
        group["target_lr" if "target_lr" in group else "lr"] = lr
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
    return note


class DeadlineFit:
    """How many epochs fit in ``budget_s`` seconds counted from ``start`` (a ``time.time()`` value).

    ``first_epoch`` is where this process started (after a resume); ``planned_epochs`` the spec's
    ``train.num_epochs``, which the spec's schedule was written for.
    """

    def __init__(self, budget_s: float, start: float, *, first_epoch: int = 0, planned_epochs: int = 1):
        self.budget_s = float(budget_s)
        self.start = float(start)
        self.first_epoch = int(first_epoch)
        self.planned_epochs = max(1, int(planned_epochs))

    def epochs(self, epochs_done_here: int, now: float) -> int:
        """The total epoch count that ends nearest the deadline at this process's pace so far
        (at least the epochs already done: stop now)."""
        elapsed = max(1e-6, now - self.start)
        per_epoch = elapsed / max(1, epochs_done_here)
        more = max(0, round((self.budget_s - elapsed) / per_epoch))
        return self.first_epoch + epochs_done_here + more

    def refit(
        self,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        *,
        epoch: int,
        num_epochs: int,
        steps_per_epoch: int,
        optim: Mapping[str, Any],
        now: float,
    ) -> tuple[int, str]:
        """After ``epoch``'s steps: the fitted epoch count, with the schedule rescaled to it, and a note."""
        fitted = max(epoch + 1, self.epochs(epoch + 1 - self.first_epoch, now))
        if fitted == num_epochs:
            return fitted, ""
        what = rescale_schedule(
            scheduler,
            planned_epochs=self.planned_epochs,
            new_epochs=fitted,
            lr_steps=[int(x) for x in optim["lr_steps"]],
            lr_step_size=int(optim["lr_step_size"]),
            steps_per_epoch=steps_per_epoch,
        )
        note = (
            f"train.time_budget {self.budget_s:g}s: {now - self.start:.0f}s after "
            f"{epoch + 1 - self.first_epoch} epoch(s), so {fitted} epochs in all ({what})"
        )
        return fitted, note
