"""Every accepted AutoML setting changes something a user would see, or is refused with the fix.

The table has one row per setting: the setting with a non-default value, and a probe that builds the
real object the setting feeds (the Optuna sampler or pruner, the space, the loop's trial spec, the
backend's budget, the plateau rule, the population, ...) and reads what it does. The probe must give
another answer than with the defaults. ``test_the_table_covers_every_setting`` fails when a setting
is added without a row.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from automl.backends.base import SweepPlan, TrialRequest
from automl.backends.optuna.backend import OptunaBackend
from automl.backends.optuna.pbt import Population
from automl.backends.optuna.study import make_pruner, make_sampler, open_study
from automl.backends.plateau import plateau_rule
from automl.commands.sweep_inputs import concurrency, make_space, sweep_epochs
from automl.errors import SettingError
from automl.results.summary import SweepSummary
from automl.settings.tao_settings import CHECKS, AutomlSettings, parse_settings
from automl.space.params import SearchParam, SearchSpace
from automl.sweep.loop import SweepLoop

SPACE = SearchSpace(
    [
        SearchParam("train.optim.lr", "float", 1e-3, 1e-4, 1e-2, "log"),
        SearchParam("model.dec_layers", "int", 2, 1, 4, "linear"),
    ]
)
BASE = {"train": {"num_epochs": 4, "checkpoint_interval": 1, "validation_interval": 1}}


def _loop(settings: AutomlSettings, tmp: Path) -> SweepLoop:
    plan = SweepPlan(tmp, BASE, SPACE, settings, max_epochs=4, concurrency=1)
    display = SimpleNamespace(
        trial_finished=lambda *a: None, trial_started=lambda *a, **k: None, epoch=lambda *a: None
    )
    return SweepLoop(plan, SweepSummary(tmp, {}), display)  # type: ignore[arg-type]


def _backend(settings: AutomlSettings, tmp: Path) -> OptunaBackend:
    backend = OptunaBackend(SweepPlan(tmp, BASE, SPACE, settings, max_epochs=4, concurrency=1))
    backend.open(_loop(settings, tmp), resume=False)
    return backend


def trials_allowed(s: AutomlSettings, tmp: Path) -> int:
    backend = _backend(s, tmp)
    return next(n for n in range(100) if not backend.may_launch(n, []))


def sampler_kind(s: AutomlSettings, tmp: Path) -> str:
    return type(make_sampler(s)).__name__


def tpe_model(s: AutomlSettings, tmp: Path) -> tuple[Any, ...]:
    sampler = make_sampler(s)
    return sampler._n_startup_trials, sampler._n_ei_candidates, sampler._gamma(100)


def pruner_kind(s: AutomlSettings, tmp: Path) -> tuple[str, Any]:
    pruner = make_pruner(s, 9)
    return type(pruner).__name__, getattr(pruner, "_reduction_factor", None)


def space_names(s: AutomlSettings, tmp: Path, root: Path) -> tuple[Any, ...]:
    try:
        space = make_space(root / "schemas" / "train.schema.json", _spec(root), s, {})
    except SettingError as refused:  # e.g. a disabled parameter asked for without the override
        return ("refused", str(refused))
    return tuple((p.name, p.low, p.high) for p in space.params)


def _spec(root: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((root / "references" / "spec_template_train.yaml").read_text())


def trial_spec(s: AutomlSettings, tmp: Path) -> tuple[Any, ...]:
    spec, epochs = _loop(s, tmp).trial_spec(TrialRequest(0, {"train.optim.lr": 1e-3}))
    return spec["train"]["checkpoint_interval"], spec["train"]["validation_interval"], epochs


def checkpoints_left(s: AutomlSettings, tmp: Path) -> int:
    from automl.results.trial_record import TrialRecord, TrialState

    train = tmp / "trial" / "train"
    train.mkdir(parents=True)
    for epoch in range(3):
        (train / f"model_epoch_{epoch:03d}.pth").write_bytes(b"w")
    record = TrialRecord(0, TrialState.COMPLETE, folder=str(tmp / "trial"), value=0.5, best_epoch=1)
    _loop(s, tmp).trial_finished(record)
    return len(list(train.glob("*.pth")))


def plateau(s: AutomlSettings, tmp: Path) -> tuple[bool, ...]:
    rule = plateau_rule(s)
    series = ([0.1, 0.4, 0.41, 0.42], [0.1, 0.5, 0.52, 0.53, 0.54], [0.1, 0.2, 0.2, 0.2, 0.2, 0.2])
    return tuple(rule.stops(v) for v in series) if rule else ()


def population(s: AutomlSettings, tmp: Path) -> tuple[Any, ...]:
    p = Population(SPACE, s)
    return p.size, p.max_generations, p.interval, p.factor


def objective(s: AutomlSettings, tmp: Path) -> tuple[str, str]:
    o = _loop(s, tmp).objective
    return o.metric, o.direction


def deadline(s: AutomlSettings, tmp: Path) -> bool:
    return _loop(s, tmp).deadline is not None


def trial_timeout(s: AutomlSettings, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import automl.sweep.loop as loop_module

    seen: dict[str, Any] = {}

    def spy(folder, spec, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(loop_module, "run_trial", spy)
    loop, backend = _loop(s, tmp), _backend(s, tmp)
    with pytest.raises(RuntimeError):
        loop.run_trial(backend, backend.ask([]))
    return seen["timeout"]


def first_trial(s: AutomlSettings, tmp: Path) -> tuple[Any, ...]:
    backend = _backend(s, tmp)
    request = backend.ask([])
    return request.baseline, tuple(sorted(request.params.items()))


def baseline_budget(s: AutomlSettings, tmp: Path) -> int | None:
    from automl.backends.base import TrialRequest

    return _loop(s, tmp).fitted_budget(TrialRequest(number=0, params={}, baseline=True))


def latency_limit(s: AutomlSettings, tmp: Path) -> float | None:
    gate = _loop(s, tmp).latency
    return None if gate is None else gate.limit_ms


def study_directions(s: AutomlSettings, tmp: Path) -> tuple[Any, ...]:
    """The directions of the study the sweep opens, and whether latency is measured."""
    study = open_study("s", optuna.storages.InMemoryStorage(), s, 9, create=True)
    return tuple(d.name for d in study.directions), _loop(s, tmp).latency is not None


def backend_name(s: AutomlSettings, tmp: Path) -> str:
    return s.backend


def workers(s: AutomlSettings, tmp: Path) -> int:
    return concurrency(s, BASE, [])


def epochs(s: AutomlSettings, tmp: Path) -> int:
    return sweep_epochs(s, BASE)


# setting -> (pairs with a non-default value, probe, or a text the refusal must contain)
Probe = Callable[..., Any]
ROWS: dict[str, tuple[dict[str, Any], Probe | str]] = {
    "automl_max_recommendations": ({"automl_max_recommendations": 3}, trials_allowed),
    "automl_max_concurrent": ({"automl_max_concurrent": 2}, workers),
    "automl_max_epochs": ({"automl_max_epochs": 2}, epochs),
    "automl_reduction_factor": ({"automl_reduction_factor": 2}, pruner_kind),
    "epoch_multiplier": ({"epoch_multiplier": 2}, epochs),
    "automl_hyperparameters": ({"automl_hyperparameters": ["train.optim.lr"]}, space_names),
    "automl_custom_param_ranges": (
        {"automl_custom_param_ranges": {"train.optim.lr": [1e-5, 1e-4]}},
        space_names,
    ),
    "override_automl_disabled_params": (
        {
            "override_automl_disabled_params": True,
            "automl_hyperparameters": ["train.optim.lr", "model.hidden_dim"],
        },
        space_names,
    ),
    "automl_delete_intermediate_ckpt": ({"automl_delete_intermediate_ckpt": False}, checkpoints_left),
    "automl_checkpoint_retention_strategy": (
        {"automl_checkpoint_retention_strategy": "terminal", "automl_algorithm": "tpe"},
        trial_spec,
    ),
    "automl_max_trials": ({"automl_algorithm": "asha", "automl_max_trials": 3}, trials_allowed),
    "automl_min_top_configs": (
        {"automl_algorithm": "asha", "automl_min_top_configs": 3},
        "automl_max_recommendations",
    ),
    "automl_early_stop_threshold": (
        {"automl_algorithm": "hyperband_es", "automl_early_stop_threshold": 0.01},
        plateau,
    ),
    "automl_min_early_stop_epochs": (
        {"automl_algorithm": "hyperband_es", "automl_min_early_stop_epochs": 2},
        plateau,
    ),
    "automl_kde_samples": ({"automl_algorithm": "bohb", "automl_kde_samples": 8}, tpe_model),
    "automl_top_n_percent": ({"automl_algorithm": "bohb", "automl_top_n_percent": 40.0}, tpe_model),
    "automl_min_points_in_model": ({"automl_algorithm": "bohb", "automl_min_points_in_model": 3}, tpe_model),
    "automl_population_size": ({"automl_algorithm": "pbt", "automl_population_size": 3}, population),
    "automl_max_generations": ({"automl_algorithm": "pbt", "automl_max_generations": 3}, population),
    "automl_eval_interval": ({"automl_algorithm": "pbt", "automl_eval_interval": 3}, population),
    "automl_perturbation_factor": (
        {"automl_algorithm": "pbt", "automl_perturbation_factor": 1.5},
        population,
    ),
    "metric": ({"metric": "val_loss"}, objective),
    "direction": ({"direction": "minimize"}, objective),
    "timeout_per_trial": ({"timeout_per_trial": "5m"}, trial_timeout),
    "time_budget": ({"time_budget": "1h"}, deadline),
    "run_baseline": ({"run_baseline": True}, first_trial),
    "baseline_time_share": (
        {"time_budget": "10m", "run_baseline": True, "baseline_time_share": 0.5},
        baseline_budget,
    ),
    "max_latency_ms": ({"max_latency_ms": 12.5}, latency_limit),
    "objectives": ({"objectives": "val_mAP50,latency_ms"}, study_directions),
    "seed": ({"seed": 7}, first_trial),
    "backend": ({"backend": "ray"}, backend_name),
    "automl_algorithm": ({"automl_algorithm": "bayesian"}, sampler_kind),
    "sampler": ({"sampler": "random"}, sampler_kind),
    "fidelity": ({"fidelity": "median"}, pruner_kind),
}
# the defaults a row's algorithm-specific setting is compared against (its algorithm, default knobs)
BASELINES = {
    "automl_max_trials": {"automl_algorithm": "asha"},
    "automl_early_stop_threshold": {"automl_algorithm": "hyperband_es"},
    "automl_min_early_stop_epochs": {"automl_algorithm": "hyperband_es"},
    "automl_kde_samples": {"automl_algorithm": "bohb"},
    "automl_top_n_percent": {"automl_algorithm": "bohb"},
    "automl_min_points_in_model": {"automl_algorithm": "bohb"},
    "automl_population_size": {"automl_algorithm": "pbt"},
    "automl_max_generations": {"automl_algorithm": "pbt"},
    "automl_eval_interval": {"automl_algorithm": "pbt"},
    "automl_perturbation_factor": {"automl_algorithm": "pbt"},
    "automl_checkpoint_retention_strategy": {"automl_algorithm": "tpe"},
    "override_automl_disabled_params": {"automl_hyperparameters": ["train.optim.lr", "model.hidden_dim"]},
    "seed": {"seed": 1},
    "baseline_time_share": {"time_budget": "10m", "run_baseline": True},
}


def test_the_table_covers_every_setting() -> None:
    assert set(ROWS) == {*CHECKS, "automl_algorithm", "sampler", "fidelity"}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_setting_changes_what_it_feeds_or_is_refused(
    name: str, tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs, probe = ROWS[name]
    if isinstance(probe, str):
        with pytest.raises(SettingError) as refused:
            parse_settings(pairs)
        assert name in str(refused.value) and probe in str(refused.value)
        return
    extra: dict[str, Any] = {}
    if probe is space_names:
        extra["root"] = root
    if probe is trial_timeout:
        extra["monkeypatch"] = monkeypatch
    (tmp_path / "set").mkdir()
    (tmp_path / "default").mkdir()
    changed = probe(parse_settings(pairs), tmp_path / "set", **extra)
    default = probe(parse_settings(BASELINES.get(name, {})), tmp_path / "default", **extra)
    assert changed != default, f"{name}: {pairs} changed nothing ({changed!r})"


@pytest.mark.parametrize(
    ("pairs", "hint"),
    [
        ({"automl_population_size": 4}, "applies to automl_algorithm=pbt"),
        ({"automl_algorithm": "tpe", "automl_kde_samples": 8}, "applies to automl_algorithm=bohb"),
        (
            {"automl_algorithm": "hyperband", "automl_early_stop_threshold": 0.2},
            "automl_algorithm=hyperband_es",
        ),
        ({"automl_algorithm": "tpe", "automl_max_trials": 5}, "applies to automl_algorithm=asha"),
        ({"automl_algorithm": "random", "automl_reduction_factor": 2}, "automl_algorithm=hyperband"),
        ({"automl_checkpoint_retention_strategy": "terminal"}, "use auto"),
        (
            {"automl_algorithm": "asha", "automl_max_trials": 5, "automl_max_recommendations": 6},
            "give one of them",
        ),
    ],
)
def test_a_setting_another_algorithm_reads_is_refused(pairs: dict[str, Any], hint: str) -> None:
    with pytest.raises(SettingError) as refused:
        parse_settings(pairs)
    assert hint in str(refused.value)


def test_hyperband_es_stops_a_trial_whose_metric_stopped_improving() -> None:
    rule = plateau_rule(
        parse_settings({"automl_algorithm": "hyperband_es", "automl_min_early_stop_epochs": 2})
    )
    assert rule is not None
    assert not rule.stops([0.1, 0.2])  # not enough epochs yet
    assert rule.stops([0.1, 0.5, 0.51, 0.52])  # +4 % over the last 2 epochs: under the 10 % threshold
    assert not rule.stops([0.1, 0.2, 0.3, 0.4])
    loss = plateau_rule(parse_settings({"automl_algorithm": "hyperband_es", "metric": "val_loss"}))
    assert loss is not None
    assert loss.stops([3.0, 1.0, 0.99, 0.98, 0.97]) and not loss.stops([3.0, 2.0, 1.5, 1.0])


def test_bohb_on_optuna_is_tpe_with_bohbs_knobs() -> None:
    sampler = make_sampler(parse_settings({"automl_algorithm": "bohb", "automl_top_n_percent": 20.0}))
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._gamma(50) == 10 and sampler._n_ei_candidates == 64 and sampler._n_startup_trials == 10
