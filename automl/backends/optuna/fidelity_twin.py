"""Multi-fidelity for a multi-objective study (``--objectives val_mAP50,latency_ms``).

Optuna's pruners read one value per step, and a multi-objective study takes no intermediate values.
Pruning compares trials on the training metric alone (a trial's latency is fixed before it trains),
so each trial of such a sweep has a twin in a single-objective study of that metric, in the same
storage (``<study>.fidelity``, shared by every process of the sweep like the main study): the epochs'
values go to the twin, the twin's pruner (Hyperband, ASHA, median: the sweep's own) decides, and
the trial's end is told to both.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna

from automl.backends.optuna.study import make_pruner
from automl.settings.tao_settings import AutomlSettings

__all__ = ["SUFFIX", "FidelityTwin"]

SUFFIX = ".fidelity"
TWIN_OF = "twin_of"  # the twin trial's user attribute: the main study's trial number


class FidelityTwin:
    def __init__(self, study_name: str, storage: Any, settings: AutomlSettings, max_epochs: int):
        self.study = optuna.create_study(
            study_name=f"{study_name}{SUFFIX}",
            storage=storage,
            sampler=optuna.samplers.RandomSampler(seed=settings.seed),  # nothing is sampled on it
            pruner=make_pruner(settings, max_epochs),
            direction=settings.direction,
            load_if_exists=True,
        )
        self.lock = threading.Lock()
        self.twins: dict[int, optuna.Trial] = {}

    def _twin(self, number: int) -> optuna.Trial:
        with self.lock:
            twin = self.twins.get(number)
            if twin is None:
                twin = self.twins[number] = self.study.ask()
                twin.set_user_attr(TWIN_OF, number)
            return twin

    def report(self, number: int, epoch: int, value: float) -> bool:
        """Report the trial's best value so far at ``epoch``; True when it should be pruned."""
        twin = self._twin(number)
        twin.report(value, step=epoch)
        return bool(twin.should_prune())

    def tell(self, number: int, state: optuna.trial.TrialState, value: float | None) -> None:
        twin = self._twin(number)
        with self.lock:
            self.twins.pop(number, None)
        if state == optuna.trial.TrialState.COMPLETE and value is not None:
            self.study.tell(twin, value)
        else:
            self.study.tell(twin, state=state)
