"""Replayed searches (automl.replay): the curve table, the surrogate, and the real Optuna backends
driven over simulated trials and workers; bench/search_quality.py end to end."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from automl.replay.curves import ReplayTableError, load_table
from automl.replay.methods import replay_method
from automl.replay.surrogate import Surrogate
from automl.results.trial_record import TrialState
from tests.automl.replay_table import EPOCHS, write_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_table(tmp_path_factory.mktemp("replay") / "table.json")


@pytest.fixture(scope="module")
def table(table_path: Path):
    return load_table(table_path)


def test_the_table_groups_seeds_and_measures_their_noise(table) -> None:
    assert len(table.configurations) == 80
    assert [len(c.runs) for c in table.configurations[:10]] == [3] * 10
    offset, epoch = table.noise  # the model draws both with a standard deviation of 0.01
    assert 0.006 < offset < 0.014 and 0.007 < epoch < 0.013
    repeated = table.configurations[0]
    assert repeated.values[-1] == pytest.approx(sum(r[-1] for r in repeated.runs) / 3)
    assert table.quantile(1.0) == max(table.values) and table.quantile(0.0) == min(table.values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t["runs"][3]["params"].pop("train.optim.lr"), r"runs\[3\]: params must name exactly"),
        (lambda t: t["runs"][5]["epochs"].pop(), r"runs\[5\]: epochs: expected rows for epochs 1..8"),
        (lambda t: t.update(max_epochs=0), "max_epochs: got 0"),
        (lambda t: t.update(runs=[]), "non-empty 'runs'"),
    ],
)
def test_a_table_it_cannot_replay_names_the_file_and_the_run(
    table_path: Path, tmp_path: Path, change, message
) -> None:
    data = json.loads(table_path.read_text())
    change(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ReplayTableError, match=message) as caught:
        load_table(bad)
    assert str(bad) in str(caught.value)
    with pytest.raises(
        ReplayTableError, match=r"no such curve table; write one with bench/curve_table\.py run"
    ):
        load_table(tmp_path / "missing.json")


def test_the_surrogate_returns_measured_curves_and_interpolates_between_them(table) -> None:
    surrogate = Surrogate(table)
    measured = table.configurations[12]
    assert surrogate.predict(measured.params).values == pytest.approx(measured.values)
    a, b = table.configurations[20], table.configurations[21]
    between = {**a.params, "train.optim.lr": (a.params["train.optim.lr"] * 1.0001)}  # next to a
    near = surrogate.predict(between).values[-1]
    assert abs(near - a.values[-1]) < abs(near - b.values[-1]) or a.values[-1] == b.values[-1]
    start = surrogate.predict(measured.params)
    assert start.epoch_seconds(1) == pytest.approx(9.0) and start.epoch_seconds(2) == pytest.approx(3.0)
    assert start.start_up == pytest.approx(6.0)


def test_a_replayed_random_search_uses_its_budget_in_full_trials(table) -> None:
    result = replay_method("random", table, epoch_budget=10 * EPOCHS, seed=1)
    assert result.epochs == 10 * EPOCHS
    assert len(result.trials) == 9  # the tenth is cut at the budget's last epoch
    assert all(t.state == TrialState.COMPLETE and t.last_epoch == EPOCHS for t in result.trials)
    observed = [s.best_observed for s in result.steps]
    assert observed == sorted(observed)  # the best value seen so far never drops
    again = replay_method("random", table, epoch_budget=10 * EPOCHS, seed=1)
    assert [t.params for t in again.trials] == [t.params for t in result.trials]  # seeded
    other = replay_method("random", table, epoch_budget=10 * EPOCHS, seed=2)
    assert [t.params for t in other.trials] != [t.params for t in result.trials]


def test_simulated_workers_run_trials_side_by_side(table) -> None:
    one = replay_method("random", table, epoch_budget=16 * EPOCHS, workers=1, seed=3)
    four = replay_method("random", table, epoch_budget=16 * EPOCHS, workers=4, seed=3)
    # 16 trials of 6 s start-up + 8 x 3 s: 480 s one after the other, 120 s on four workers
    assert one.steps[-1].seconds == pytest.approx(480.0)
    assert four.steps[-1].seconds == pytest.approx(120.0)
    first = [sorted(r.trials, key=lambda t: t.number)[:4] for r in (one, four)]
    assert [t.params for t in first[0]] == [t.params for t in first[1]]  # the same random draws


def test_hyperband_prunes_replayed_trials_and_starts_more_of_them(table) -> None:
    random_search = replay_method("random", table, epoch_budget=20 * EPOCHS, seed=0)
    hyperband = replay_method("hyperband", table, epoch_budget=20 * EPOCHS, seed=0)
    pruned = [t for t in hyperband.trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.last_epoch is not None and t.last_epoch < EPOCHS for t in pruned)
    assert len(hyperband.trials) > len(random_search.trials)


def test_pbt_clones_continue_their_parents_value(table) -> None:
    result = replay_method("pbt", table, epoch_budget=24 * EPOCHS, seed=0)
    by_number = {t.number: t for t in result.trials}
    clones = [t for t in result.trials if t.parent is not None and t.value is not None]
    assert clones, "no PBT trial continued another one"
    for clone in clones:
        parent = by_number[clone.parent]
        assert clone.resume_epoch == (parent.best_epoch or 0) + 1
        # the clone starts from the parent's weights: no drop back to a first epoch's value
        assert clone.value >= parent.value - 0.06


def test_search_quality_prints_regret_and_speed_up_per_method(table_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "quality.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/search_quality.py"),
            "--table",
            str(table_path),
            "--methods",
            "random,hyperband",
            "--seeds",
            "3",
            "--workers",
            "1,4",
            "--trials",
            "6",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| workers | method | regret at 1/4" in proc.stdout
    report = json.loads(out.read_text())
    assert [(r["workers"], r["method"]) for r in report["rows"]] == [
        (1, "random"),
        (1, "hyperband"),
        (4, "random"),
        (4, "hyperband"),
    ]
    for row in report["rows"]:
        low, median, high = row["regret"]["1.0"]
        assert 0.0 <= low <= median <= high <= 1.0
    assert next(r for r in report["rows"] if r["method"] == "random")["speedup_vs_random"] in (1.0, None)


def test_failed_runs_are_kept_in_the_file_and_left_out_of_the_replay(
    table_path: Path, tmp_path: Path
) -> None:
    data = json.loads(table_path.read_text())
    data["runs"].append(
        {"trial": 99, "seed": 0, "params": data["runs"][0]["params"], "error": "exit 1: loss is NaN"}
    )
    path = tmp_path / "with_failure.json"
    path.write_text(json.dumps(data))
    loaded = load_table(path)
    assert loaded.failed == 1 and len(loaded.configurations) == 80
    for run in data["runs"]:
        run["error"] = "exit 1"
    path.write_text(json.dumps(data))
    with pytest.raises(ReplayTableError, match="every run failed"):
        load_table(path)


def test_the_curve_tables_configurations_do_not_depend_on_how_many_are_drawn(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import curve_table

    space = curve_table.table_space(curve_table.base_spec(tmp_path, 10))
    assert {"train.optim.lr", "train.optim.lr_scheduler", "model.class_loss"} <= set(space.names)
    assert curve_table.configurations(space, 3) == curve_table.configurations(space, 5)[:3]
    written = json.loads(json.dumps({"space": space.as_dict(), "max_epochs": 10, "runs": []}))
    assert curve_table.same_table(written, space, 10)  # a table read back from its file continues
    assert not curve_table.same_table(written, space, 12)


def test_over_20_seeds_the_default_search_has_less_regret_than_random(table) -> None:
    """The seeded statistical test of the default (``--policy auto`` with no algorithm): over 20 seeds
    its median regret at half the budget is below random search's (0.094 against 0.107). With the
    default replaced by random search the medians are equal and the test fails.

    At a quarter of the budget the default equals random search on this table (0.120 against 0.119):
    both are still in TPE's random start-up trials, which Hyperband has not yet pruned."""
    surrogate = Surrogate(table)
    y_star, y_min = max(table.values), min(table.values)
    budget = 20 * EPOCHS

    def median_regret(method: str) -> float:
        regrets = []
        for seed in range(20):
            value = replay_method(method, table, epoch_budget=budget, seed=seed, surrogate=surrogate)
            regrets.append((y_star - (value.best_true_at(budget / 2) or y_min)) / (y_star - y_min))
        return statistics.median(regrets)

    default, random_search = median_regret("auto"), median_regret("random")
    assert default < random_search, (default, random_search)
