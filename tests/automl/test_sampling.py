"""Sampling through a real Optuna study: every constraint holds, weights shape frequencies."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
import pytest

from automl.errors import SettingError
from automl.space.build import build_space, encode_params, sample_params
from tests.automl.synthetic_space import SYNTH, draw, random_study, spec_of, tao_schema


def test_synthetic_rules_hold_on_every_sample() -> None:
    space = build_space(SYNTH, spec_of(SYNTH))
    by = {p.name: p for p in space.params}
    assert by["train.rank"].scale == "power" and by["train.rank"].encoding == "power"
    assert by["train.hidden"].scale == "multiple"
    assert by["train.size_min"].high == 59  # the parent's range leaves room for size_max > size_min
    names = space.names
    assert names.index("train.crop_min") < names.index("train.crop_max")
    assert names.index("train.num_queries") < names.index("train.num_select")
    seen_rank, seen_hidden = set(), set()
    for v in draw(space, 400, seed=1):
        assert v["train.rank"] in {2, 4, 8, 16, 32, 64, 128, 256}  # powers of 2 from 2 (TAO starts at k^1)
        assert v["train.hidden"] % 8 == 0 and 8 <= v["train.hidden"] <= 100
        assert v["train.crop_max"] > v["train.crop_min"] and v["train.crop_max"] <= 1.0
        assert v["train.size_max"] > v["train.size_min"] and v["train.size_max"] <= 60
        assert 1 <= v["train.num_select"] <= v["train.num_queries"]
        assert isinstance(v["train.rank"], int) and isinstance(v["train.num_select"], int)
        seen_rank.add(v["train.rank"])
        seen_hidden.add(v["train.hidden"])
    assert len(seen_rank) == 8 and len(seen_hidden) >= 10


def test_weighted_categorical_frequencies_follow_the_weights() -> None:
    schema = tao_schema(decay=SYNTH["properties"]["train"]["properties"]["decay"])
    space = build_space(schema, spec_of(schema))
    counts = Counter(v["train.decay"] for v in draw(space, 2000, seed=7))
    for option, weight in zip(["linear", "sqrt", "cosine", "none"], [0.1, 0.1, 0.4, 0.4]):
        assert abs(counts[option] / 2000 - weight) < 0.03, counts


def test_weighted_choice_is_recorded_and_distributions_stay_fixed() -> None:
    space = build_space(SYNTH, spec_of(SYNTH))
    study = random_study(3)
    for _ in range(20):
        trial = study.ask()
        values = sample_params(space, trial)
        assert trial.user_attrs["train.decay"] == values["train.decay"]
        assert trial.user_attrs["train.num_select"] == values["train.num_select"]
        study.tell(trial, 0.0)
    for name in study.trials[0].distributions:
        assert len({repr(t.distributions[name]) for t in study.trials}) == 1, name


def test_num_select_never_exceeds_num_queries_on_rtdetr(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    space = build_space(schema, spec)
    for v in draw(space, 300, seed=2):
        assert 1 <= v["model.num_select"] <= v["model.num_queries"]


def test_one_class_keeps_num_select_below_num_queries(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    spec["dataset"]["num_classes"] = 1
    space = build_space(schema, spec, hyperparameters=["model.num_queries", "model.num_select"])
    for v in draw(space, 200, seed=4):
        assert v["model.num_select"] < v["model.num_queries"]


def test_encode_params_enqueues_the_baseline(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    for space in (build_space(schema, spec), build_space(SYNTH, spec_of(SYNTH))):
        study = random_study()
        study.enqueue_trial(encode_params(space, space.defaults()))
        values = sample_params(space, study.ask())
        for name, default in space.defaults().items():
            assert values[name] == pytest.approx(default), name
    space = build_space(schema, spec)
    with pytest.raises(SettingError, match="outside the search space"):
        encode_params(space, {**space.defaults(), "dataset.batch_size": 64})


def test_numeric_choices_respect_the_sampled_parent(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    space = build_space(
        schema, spec, user_ranges={"model.num_queries": "150:600", "model.num_select": "100,300,500"}
    )
    select = space.get("model.num_select")
    assert (select.kind, select.choices, select.encoding) == ("categorical", (100, 300, 500), "fraction")
    seen = Counter()
    for v in draw(space, 300, seed=5):
        assert v["model.num_select"] <= v["model.num_queries"]
        seen[v["model.num_select"]] += 1
    assert set(seen) == {100, 300, 500}
    fixed = build_space(
        schema, spec, hyperparameters=["model.num_select"], user_ranges={"model.num_select": "100,300,500"}
    )
    assert fixed.get("model.num_select").choices == (100, 300)  # num_queries stays 300


def test_tpe_samples_the_rtdetr_space(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    space = build_space(schema, spec)
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(n_startup_trials=4, seed=0), direction="maximize"
    )
    for _ in range(10):
        trial = study.ask()
        values = sample_params(space, trial)
        assert values["model.num_select"] <= values["model.num_queries"]
        study.tell(trial, -abs(values["train.optim.lr"] - 2e-4))
    assert len(study.trials) == 10 and study.best_trial.user_attrs["model.num_select"] >= 1


def test_user_choices_keep_math_conditions() -> None:
    with pytest.raises(SettingError, match="not a power of 2"):
        build_space(SYNTH, spec_of(SYNTH), user_ranges={"train.rank": "4,6"})
    with pytest.raises(SettingError, match="not a multiple of 8"):
        build_space(SYNTH, spec_of(SYNTH), user_ranges={"train.hidden": "16,20"})
    space = build_space(SYNTH, spec_of(SYNTH), user_ranges={"train.rank": "8:64"})
    assert {v["train.rank"] for v in draw(space, 60)} == {8, 16, 32, 64}
