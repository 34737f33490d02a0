"""Start-up trials near the best trial so far, then the wrapped sampler (TPE) as usual.

TPE's first ``n_startup_trials`` are drawn uniformly at random. With a baseline trial (setting
``run_baseline=true``: trial 0 runs the spec's own values) that wastes a short sweep: most random
points of a range such as lr in [1e-5, 1e-2] are far worse than the baseline and are pruned after an
epoch or two, so a 10-minute search never gets past the start-up phase. When the study already
holds a completed trial, this sampler draws the start-up trials as perturbations of the best
completed trial (the incumbent) instead, the way a practitioner tries "a bit more lr, a smaller
batch" around a configuration that works; once TPE has its start-up trials it takes over. In a
latency-limited sweep (``--max-latency-ms``) trials over the limit never train and count as no
start-up trial, and a baseline over the limit is the centre until a trial completes: its recipe is
kept while its network is varied until one fits.

Each Optuna parameter is kept as it is with probability 0.5 (so a trial changes a few things at a
time, not all eleven; at least one), and otherwise moved inside its own distribution, so bounds,
steps and the space's encodings hold: a log-scale float is multiplied by
``exp(N(0, 0.1 * ln(high / low)))``, a linear float or an int moves by ``N(0, 0.1 * (high - low))``,
rounded to its step and clipped to the bounds the trial suggests (a dependent bound such as
num_select <= num_queries holds), drawn again when that lands on the old value; a categorical
takes another choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from automl.backends.optuna.shared_budget import RECORD_ATTR
from automl.launch.latency_gate import INFEASIBLE

__all__ = ["NeighbourhoodStartSampler"]

SPREAD = 0.1  # standard deviation as a fraction of the range (of its logarithm for log scales)
KEEP_VALUE = 0.5  # probability that a parameter is not perturbed at all


class NeighbourhoodStartSampler(optuna.samplers.BaseSampler):
    """``base`` (TPE) with its start-up trials drawn around the best completed trial."""

    def __init__(
        self,
        base: optuna.samplers.BaseSampler,
        n_startup_trials: int,
        seed: int | None = None,
        objective_index: int = 0,
    ):
        self._base = base
        self._objective_index = objective_index
        self._n_startup = n_startup_trials
        self._rng = np.random.default_rng(seed)
        self._centre: dict[int, dict[str, tuple[Any, bool]]] = {}  # trial -> {param: (incumbent's, perturb?)}

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._base.reseed_rng()

    def _incumbent(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, tuple[Any, bool]] | None:
        """The params to perturb for ``trial``, or None when the base sampler should decide."""
        if trial.number in self._centre:
            return self._centre[trial.number]
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        trials = [t for t in finished if not _infeasible(t)]  # too slow to train: cost no start-up trial
        index = self._objective_index  # the training metric's place among a multi-objective study's values
        complete = [(t, t.values[index]) for t in trials if t.state == TrialState.COMPLETE and t.values]
        if len(trials) >= self._n_startup + 1 or trial.user_attrs.get("baseline"):
            return None
        best: FrozenTrial | None = None
        if complete:
            sign = 1.0 if study.directions[index] == optuna.study.StudyDirection.MAXIMIZE else -1.0
            best = max(complete, key=lambda scored: sign * scored[1])[0]
        else:  # a baseline over the latency limit: its recipe is sound, its network too slow
            best = next((t for t in finished if t.user_attrs.get("baseline") and _infeasible(t)), None)
        if best is None:
            return None
        names = sorted(best.params)
        moved = {n for n in names if self._rng.random() >= KEEP_VALUE} or {
            names[int(self._rng.integers(len(names)))]
        }
        self._centre[trial.number] = {n: (best.params[n], n in moved) for n in names}
        return self._centre[trial.number]

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._incumbent(study, trial) is not None:
            return {}  # every parameter then goes through sample_independent, near the incumbent
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        centre = self._incumbent(study, trial)
        if centre is None or param_name not in centre:
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        value, moves = centre[param_name]
        if not moves:
            return value
        moved = perturb(value, param_distribution, self._rng)
        for _ in range(20):  # a value clipped back to a bound or rounded back is no move: draw again
            if moved != value:
                break
            moved = perturb(value, param_distribution, self._rng)
        return moved

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._centre.pop(trial.number, None)
        self._base.after_trial(study, trial, state, values)


def _infeasible(trial: FrozenTrial) -> bool:
    """A trial ended over ``--max-latency-ms`` before training (its record says so)."""
    record = trial.user_attrs.get(RECORD_ATTR)
    return isinstance(record, dict) and record.get("failure_class") == INFEASIBLE


def perturb(value: Any, distribution: BaseDistribution, rng: np.random.Generator) -> Any:
    """A value near ``value`` inside ``distribution`` (see the module docstring)."""
    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        others = [c for c in choices if c != value]
        return others[int(rng.integers(len(others)))] if others else choices[0]
    if not isinstance(distribution, (IntDistribution, FloatDistribution)):
        raise TypeError(f"not an Optuna distribution this sampler moves: {distribution!r}")
    low, high = distribution.low, distribution.high
    if high <= low:
        return low
    if distribution.log and value > 0:
        moved = math.exp(math.log(value) + rng.normal(0.0, SPREAD * math.log(high / low)))
    else:
        moved = float(value) + rng.normal(0.0, SPREAD * (high - low))
    moved = min(max(moved, low), high)
    if isinstance(distribution, IntDistribution):
        step = distribution.step
        return int(min(max(low + round((moved - low) / step) * step, low), high))
    if distribution.step is not None:
        float_step = distribution.step
        return float(min(max(low + round((moved - low) / float_step) * float_step, low), high))
    return float(moved)
