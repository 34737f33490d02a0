"""Hyperband with early stopping (TAO's ``hyperband_es``): a trial whose metric stopped improving is
stopped, on top of Hyperband's own pruning.

TAO's knobs: after at least ``automl_min_early_stop_epochs`` validations, a trial stops when the
best value of its last ``automl_min_early_stop_epochs`` epochs improves on its best value before
them by less than ``automl_early_stop_threshold`` (a fraction of that earlier best; 0.1 = 10 %).
The same rule runs on both backends: in the sweep loop for Optuna, as a Tune ``Stopper`` for Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from automl.results.objective import Objective
from automl.settings.tao_settings import AutomlSettings

__all__ = ["Plateau", "plateau_rule"]


@dataclass(frozen=True)
class Plateau:
    threshold: float  # automl_early_stop_threshold
    window: int  # automl_min_early_stop_epochs
    objective: Objective

    def stops(self, values: Sequence[float]) -> bool:
        """``values``: a trial's validations in epoch order."""
        if len(values) <= self.window:
            return False
        before, recent = values[: -self.window], values[-self.window :]
        best_before = self.objective.best(before, float)
        best_recent = self.objective.best(recent, float)
        if best_before is None or best_recent is None:
            return False
        gain = best_recent - best_before if self.objective.maximize else best_before - best_recent
        return gain < self.threshold * max(abs(best_before), 1e-12)

    def reason(self, epoch: int) -> str:
        return (
            f"stopped early after epoch {epoch}: {self.objective.metric} improved by less than "
            f"{self.threshold:g} x its earlier best over the last {self.window} epochs (hyperband_es)"
        )


def plateau_rule(settings: AutomlSettings) -> Plateau | None:
    """The rule for ``automl_algorithm=hyperband_es``; None for every other algorithm."""
    if settings.algorithm_name != "hyperband_es":
        return None
    return Plateau(
        threshold=settings.early_stop_threshold,
        window=settings.min_early_stop_epochs,
        objective=Objective(settings.metric, settings.direction),
    )
