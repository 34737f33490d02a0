"""AutoML settings under TAO's names: defaults, aliases, algorithms, and the errors a user sees."""

from __future__ import annotations

from typing import Any

import pytest

from automl.errors import SettingError
from automl.settings.tao_settings import AutomlSettings, parse_setting_args, parse_settings


def test_defaults() -> None:
    settings = parse_settings({})
    assert isinstance(settings, AutomlSettings)
    assert (settings.algorithm, settings.fidelity, settings.algorithm_name) == (
        "tpe",
        "hyperband",
        "hyperband",
    )
    assert settings.max_recommendations == 20
    assert settings.reduction_factor == 3 and settings.epoch_multiplier == 1
    assert settings.max_epochs is None  # the spec's train.num_epochs
    assert settings.delete_intermediate_ckpt is True
    assert settings.override_disabled_params is False
    assert settings.hyperparameters is None
    assert (settings.metric, settings.direction) == ("val_mAP50", "maximize")
    assert settings.timeout_per_trial is None
    assert (settings.population_size, settings.max_generations, settings.eval_interval) == (10, 20, 10)
    assert settings.perturbation_factor == 1.2
    assert (settings.min_top_configs, settings.early_stop_threshold, settings.min_early_stop_epochs) == (
        5,
        0.1,
        3,
    )


@pytest.mark.parametrize(
    ("name", "algorithm", "fidelity", "canonical"),
    [
        ("tpe", "tpe", "none", "tpe"),
        ("bayesian", "bayesian", "none", "bayesian"),
        ("b", "bayesian", "none", "bayesian"),
        ("Bayesian", "bayesian", "none", "bayesian"),
        ("random", "random", "none", "random"),
        ("hyperband", "tpe", "hyperband", "hyperband"),
        ("h", "tpe", "hyperband", "hyperband"),
        ("hes", "tpe", "hyperband", "hyperband_es"),
        ("asha", "tpe", "asha", "asha"),
        ("bohb", "tpe", "hyperband", "bohb"),
        ("pbt", "pbt", "none", "pbt"),
    ],
)
def test_algorithm_names_split_into_sampler_and_fidelity(
    name: str, algorithm: str, fidelity: str, canonical: str
) -> None:
    settings = parse_settings({"automl_algorithm": name})
    assert (settings.algorithm, settings.fidelity, settings.algorithm_name) == (
        algorithm,
        fidelity,
        canonical,
    )


def test_sampler_and_fidelity_override_either_half() -> None:
    settings = parse_settings({"automl_algorithm": "hyperband", "sampler": "random"})
    assert (settings.algorithm, settings.fidelity) == ("random", "hyperband")
    settings = parse_settings({"automl_algorithm": "bayesian", "fidelity": "median"})
    assert (settings.algorithm, settings.fidelity) == ("bayesian", "median")


@pytest.mark.parametrize(
    ("pairs", "field", "value"),
    [
        ({"num_recommendations": 7}, "max_recommendations", 7),
        ({"automl_max_recommendations": 7}, "max_recommendations", 7),
        ({"automl_R": 9}, "max_epochs", 9),
        ({"automl_max_epochs": 9}, "max_epochs", 9),
        ({"automl_nu": 2}, "reduction_factor", 2),
        ({"automl_reduction_factor": 4}, "reduction_factor", 4),
        ({"automl_max_concurrent": 2}, "max_concurrent", 2),
        ({"epoch_multiplier": 2}, "epoch_multiplier", 2),
        ({"override_automl_disabled_params": True}, "override_disabled_params", True),
        ({"automl_delete_intermediate_ckpt": False}, "delete_intermediate_ckpt", False),
        ({"automl_hyperparameters": ["train.optim.lr"]}, "hyperparameters", ("train.optim.lr",)),
        (
            {"automl_hyperparameters": "[train.optim.lr, model.dec_layers]"},
            "hyperparameters",
            ("train.optim.lr", "model.dec_layers"),
        ),
        ({"automl_algorithm": "asha", "automl_max_trials": 30}, "max_trials", 30),
        ({"automl_algorithm": "pbt", "automl_population_size": 4}, "population_size", 4),
        ({"automl_algorithm": "pbt", "automl_perturbation_factor": 1.5}, "perturbation_factor", 1.5),
        ({"timeout_per_trial": 90}, "timeout_per_trial", 90.0),
        ({"timeout_per_trial": "30m"}, "timeout_per_trial", 1800.0),
        ({"timeout_per_trial": "1.5h"}, "timeout_per_trial", 5400.0),
        (
            {"custom_param_ranges": {"train.optim.lr": "1e-5:1e-3"}},
            "custom_param_ranges",
            {"train.optim.lr": "1e-5:1e-3"},
        ),
    ],
)
def test_tao_names_and_aliases(pairs: dict[str, Any], field: str, value: Any) -> None:
    assert getattr(parse_settings(pairs), field) == value


def test_metric_direction_follows_the_name_unless_given() -> None:
    assert parse_settings({"metric": "val_loss"}).direction == "minimize"
    assert parse_settings({"metric": "val_mAP"}).direction == "maximize"
    assert parse_settings({"metric": "val_loss", "direction": "maximize"}).direction == "maximize"


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("automl_max_recomendations", "automl_max_recommendations"),
        ("automl_algoritm", "automl_algorithm"),
        ("num_recomendations", "num_recommendations"),
        ("automl_reduction_factr", "automl_reduction_factor"),
    ],
)
def test_unknown_setting_suggests_a_close_match(key: str, hint: str) -> None:
    with pytest.raises(SettingError) as info:
        parse_settings({key: 3})
    assert str(info.value) == f"{key}: unknown AutoML setting; did you mean {hint}?"


def test_unknown_setting_without_a_close_match_lists_the_known_ones() -> None:
    with pytest.raises(
        SettingError, match=r"unknown AutoML setting; known settings: .*automl_max_recommendations"
    ):
        parse_settings({"zzz": 1})


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ({"automl_max_recommendations": 0}, "automl_max_recommendations: got 0; expected an integer >= 1"),
        ({"automl_max_recommendations": "ten"}, "automl_max_recommendations: got 'ten'"),
        ({"automl_max_recommendations": True}, "automl_max_recommendations: got True"),
        ({"num_recommendations": 2.5}, "num_recommendations: got 2.5"),
        ({"automl_nu": 1}, "automl_nu: got 1; expected an integer >= 2"),
        (
            {"automl_delete_intermediate_ckpt": "yes"},
            "automl_delete_intermediate_ckpt: got 'yes'; expected true or false",
        ),
        (
            {"automl_algorithm": "bayes"},
            "automl_algorithm: got 'bayes'; expected one of .*did you mean bayesian",
        ),
        ({"automl_algorithm": "dehb"}, "'dehb' is a TAO algorithm this tool does not run"),
        ({"fidelity": "sha"}, "fidelity: got 'sha'; expected one of hyperband, asha, median, none"),
        ({"sampler": "cmaes"}, "sampler: got 'cmaes'"),
        ({"automl_algorithm": "pbt", "fidelity": "asha"}, "pbt schedules its own trials"),
        ({"direction": "up"}, "direction: got 'up'; expected one of maximize, minimize"),
        ({"timeout_per_trial": "soon"}, "timeout_per_trial: got 'soon'"),
        ({"timeout_per_trial": 0}, "timeout_per_trial: got 0"),
        ({"automl_hyperparameters": [1, 2]}, "automl_hyperparameters: got \\[1, 2\\]"),
        ({"automl_R": 9, "automl_max_epochs": 27}, "automl_max_epochs: given twice, as automl_R=9"),
        ({"automl_checkpoint_retention_strategy": "all"}, "expected one of auto, best, terminal"),
    ],
)
def test_bad_values_name_the_setting_and_the_value(pairs: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        parse_settings(pairs)


def test_same_value_under_an_alias_twice_is_fine() -> None:
    assert parse_settings({"automl_R": 9, "automl_max_epochs": 9}).max_epochs == 9


def test_parse_setting_args_types_values_like_yaml() -> None:
    pairs = parse_setting_args(
        [
            "automl_max_recommendations=10",
            "automl_algorithm=hes",
            "automl_delete_intermediate_ckpt=false",
            "automl_hyperparameters=[train.optim.lr, model.dec_layers]",
            "automl_early_stop_threshold=1e-2",
            "timeout_per_trial=2h",
            "automl_max_concurrent=",
        ]
    )
    assert pairs == {
        "automl_max_recommendations": 10,
        "automl_algorithm": "hes",
        "automl_delete_intermediate_ckpt": False,
        "automl_hyperparameters": ["train.optim.lr", "model.dec_layers"],
        "automl_early_stop_threshold": 0.01,
        "timeout_per_trial": "2h",
        "automl_max_concurrent": None,
    }
    settings = parse_settings(pairs)
    assert settings.hyperparameters == ("train.optim.lr", "model.dec_layers")
    assert settings.timeout_per_trial == 7200.0


@pytest.mark.parametrize("arg", ["automl_max_recommendations", "=3", "automl_hyperparameters=[a, b"])
def test_parse_setting_args_rejects_malformed_pairs(arg: str) -> None:
    with pytest.raises(SettingError):
        parse_setting_args([arg])
