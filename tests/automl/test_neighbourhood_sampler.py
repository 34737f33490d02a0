"""Start-up trials around the best trial (setting run_baseline=true): real Optuna studies."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from automl.backends.optuna.neighbourhood_sampler import NeighbourhoodStartSampler, perturb
from automl.backends.optuna.shared_budget import RECORD_ATTR
from automl.backends.optuna.study import make_sampler
from automl.launch.latency_gate import INFEASIBLE
from automl.settings.tao_settings import parse_settings

BASELINE = {"lr": 1e-3, "batch": 8, "opt": "adamw", "prob": 0.0}


def _objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
    batch = trial.suggest_int("batch", 4, 16)
    opt = trial.suggest_categorical("opt", ["adamw", "sgd"])
    prob = trial.suggest_float("prob", 0.0, 1.0)
    return -abs(math.log10(lr) + 2.7) - abs(batch - 6) / 10 - (opt != "adamw") - prob


def _study(sampler: optuna.samplers.BaseSampler, trials: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(BASELINE, user_attrs={"baseline": True})
    study.optimize(_objective, n_trials=trials)
    return study


def test_startup_trials_stay_near_the_baseline_then_tpe_takes_over():
    base = optuna.samplers.TPESampler(seed=0, n_startup_trials=6, multivariate=True)
    study = _study(NeighbourhoodStartSampler(base, n_startup_trials=6, seed=0), 7)
    local = study.trials[1:7]
    # uniform sampling over 3 decades would put most lr values more than 4x away from 1e-3
    assert all(abs(math.log10(t.params["lr"]) + 3) < 1.2 for t in local), [t.params for t in local]
    assert all(4 <= t.params["batch"] <= 16 and 0 <= t.params["prob"] <= 1 for t in local)
    assert sum(t.params["opt"] == "adamw" for t in local) >= 2  # each parameter moves in about half
    configs = {tuple(sorted(t.params.items())) for t in study.trials[:7]}
    assert len(configs) == 7  # each start-up trial changes something, none is a copy
    assert len({t.params["lr"] for t in local}) >= 2
    random_study = _study(optuna.samplers.RandomSampler(seed=0), 7)
    spread = np.std([math.log10(t.params["lr"]) for t in random_study.trials[1:]])
    assert np.std([math.log10(t.params["lr"]) for t in local]) < spread


def test_each_startup_trial_perturbs_the_best_completed_trial_so_far():
    sampler = NeighbourhoodStartSampler(optuna.samplers.RandomSampler(seed=1), n_startup_trials=20, seed=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(BASELINE, user_attrs={"baseline": True})
    study.enqueue_trial({"lr": 2e-3, "batch": 6, "opt": "adamw", "prob": 0.0})  # better than the baseline
    study.optimize(_objective, n_trials=8)
    assert study.best_trial.number != 0
    near_best = [abs(math.log10(t.params["lr"]) - math.log10(2e-3)) for t in study.trials[2:]]
    assert np.median(near_best) < 0.6


def test_without_a_completed_trial_the_base_sampler_decides():
    sampler = NeighbourhoodStartSampler(optuna.samplers.RandomSampler(seed=3), n_startup_trials=5, seed=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=1)
    twin = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3))
    twin.optimize(_objective, n_trials=1)
    assert study.trials[0].params == twin.trials[0].params


def test_a_baseline_over_the_latency_limit_is_the_centre_and_infeasible_trials_cost_no_startup():
    """A latency-limited sweep: trials whose network is too slow (``batch`` stands for the network
    here: above 10 is too slow) end untrained, recorded infeasible, as the sweep does it."""
    sampler = NeighbourhoodStartSampler(optuna.samplers.RandomSampler(seed=5), n_startup_trials=4, seed=5)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({**BASELINE, "batch": 12}, user_attrs={"baseline": True})
    trained = 0
    while trained < 4:
        trial = study.ask()
        value = _objective(trial)
        if trial.params["batch"] > 10:
            trial.set_user_attr(RECORD_ATTR, {"failure_class": INFEASIBLE})
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        trained += 1
        study.tell(trial, value)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    startup = study.trials[1:]
    assert len(startup) > 4  # the infeasible draws did not use up the 4 start-up trials
    # every start-up trial is a perturbation of the baseline's recipe, not a uniform draw
    assert all(abs(math.log10(t.params["lr"]) + 3) < 1.2 for t in startup), [t.params for t in startup]
    assert sum(t.params["opt"] == "adamw" for t in startup) >= len(startup) // 3


@pytest.mark.parametrize(
    ("value", "distribution"),
    [
        (1e-3, FloatDistribution(1e-5, 1e-2, log=True)),
        (0.0, FloatDistribution(0.0, 1.0)),
        (1.0, FloatDistribution(0.0, 1.0, step=0.25)),
        (8, IntDistribution(4, 16)),
        (32, IntDistribution(8, 64, step=8)),
        ("b", CategoricalDistribution(["a", "b", "c"])),
    ],
)
def test_perturbed_values_respect_bounds_steps_and_choices(value, distribution):
    rng = np.random.default_rng(0)
    values = [perturb(value, distribution, rng) for _ in range(200)]
    assert all(distribution._contains(distribution.to_internal_repr(v)) for v in values)
    assert len(set(values)) > 1  # it moves
    if isinstance(distribution, CategoricalDistribution):
        assert value not in values


def test_run_baseline_turns_it_on_for_tpe_and_bayesian_only():
    assert isinstance(make_sampler(parse_settings({"run_baseline": True})), NeighbourhoodStartSampler)
    settings = parse_settings({"run_baseline": True, "automl_algorithm": "bayesian"})
    assert isinstance(make_sampler(settings), NeighbourhoodStartSampler)
    settings = parse_settings({"run_baseline": True, "automl_algorithm": "random"})
    assert isinstance(make_sampler(settings), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler(parse_settings({})), optuna.samplers.TPESampler)
