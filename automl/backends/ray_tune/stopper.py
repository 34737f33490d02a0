"""What stops Ray trials besides the scheduler, as the sweep loop stops Optuna trials:

- the time budget: after the deadline a trial stops at its next validation (its best epoch counts),
  and the experiment ends once every started trial has reported one, so no trial is lost;
- ``automl_algorithm=hyperband_es``: the plateau rule (:mod:`automl.backends.plateau`).

The stopper holds no clock of its own (Tune pickles it with the experiment for a restore): it asks
the running sweep's hooks through the driver callback.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper

from automl.backends.plateau import Plateau
from automl.backends.ray_tune import callback

__all__ = ["SweepStopper"]


class SweepStopper(Stopper):
    def __init__(self, metric: str, rule: Plateau | None):
        self.metric = metric
        self.rule = rule
        self.values: dict[str, dict[int, float]] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self.metric not in result or "epoch" not in result:
            return False
        if callback.past_deadline():
            return True
        if self.rule is None:
            return False
        seen = self.values.setdefault(trial_id, {})
        seen[int(result["epoch"])] = float(result[self.metric])
        return self.rule.stops([seen[e] for e in sorted(seen)])

    def stop_all(self) -> bool:
        return callback.past_deadline() and callback.every_started_trial_reported()
