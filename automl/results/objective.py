"""What a sweep optimizes: one metric and its direction, used everywhere a "best" is chosen.

The best epoch of a trial (its score and the checkpoint handed on), the value the backend is told,
the schedule's view of a trial's progress, PBT's parents and the sweep's best trial all ask the same
:class:`Objective`, so ``--setting metric=val_loss`` (minimized) picks the lowest loss everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

__all__ = ["Direction", "Objective"]

T = TypeVar("T")
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Objective:
    metric: str = "val_mAP50"
    direction: Direction = "maximize"

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction: {self.direction!r}; expected maximize or minimize")

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def mode(self) -> Literal["max", "min"]:
        """Ray Tune's name of the direction."""
        return "max" if self.maximize else "min"

    def better(self, value: float, than: float) -> bool:
        """``value`` is strictly better than ``than``."""
        return value > than if self.maximize else value < than

    def pick(self, a: float, b: float) -> float:
        """The better of two values (``a`` on a tie)."""
        return b if self.better(b, a) else a

    def best(self, items: Iterable[T], value: Callable[[T], float | None]) -> T | None:
        """The item with the best finite value (the earliest one on a tie); None when none has one."""
        chosen: T | None = None
        chosen_value = 0.0
        for item in items:
            raw = value(item)
            if raw is None or not math.isfinite(float(raw)):
                continue
            if chosen is None or self.better(float(raw), chosen_value):
                chosen, chosen_value = item, float(raw)
        return chosen

    def ranked(self, items: Iterable[T], value: Callable[[T], float]) -> list[T]:
        """Best first (a stable sort: earlier items first on a tie)."""
        return sorted(items, key=lambda item: -value(item) if self.maximize else value(item))
