"""``automl_algorithm=hyperband_es`` on Ray: the plateau rule (:mod:`automl.backends.plateau`) as a
Tune ``Stopper``, next to the Hyperband scheduler."""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper

from automl.backends.plateau import Plateau

__all__ = ["PlateauStopper"]


class PlateauStopper(Stopper):
    def __init__(self, rule: Plateau):
        self.rule = rule
        self.values: dict[str, dict[int, float]] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        metric = self.rule.objective.metric
        if metric not in result or "epoch" not in result:
            return False
        seen = self.values.setdefault(trial_id, {})
        seen[int(result["epoch"])] = float(result[metric])
        return self.rule.stops([seen[e] for e in sorted(seen)])

    def stop_all(self) -> bool:
        return False
