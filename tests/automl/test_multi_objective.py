"""Accuracy and latency together (``automl run --objectives val_mAP50,latency_ms``): a real
multi-objective Optuna sweep of real trials on the tiny preset, each network's latency measured
before it trains; the Pareto front in summary.json, ``automl status`` and MLflow; Hyperband pruning
on the metric alone (the twin study); trials over ``--max-latency-ms`` never trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

from automl.errors import SettingError
from automl.results.objective import Objective
from automl.results.pareto import pareto_front
from automl.results.selection import best_trial
from automl.results.trial_record import TrialRecord, TrialState
from automl.settings.tao_settings import parse_settings
from tests.conftest import tiny_spec, write_spec

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TRIALS = 5


def automl(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def sweep_args(spec: Path, sweep: Path, *extra: str) -> list[str]:
    return [
        "run", "-e", str(spec), "--results-dir", str(sweep.parent), "--name", sweep.name,
        "--max-epochs", "2", "--no-pipeline", "--seed", "3",
        "--setting", "automl_hyperparameters=[model.dec_layers,train.optim.lr]", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def front_sweep(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """TPE + Hyperband over the decoder depth (the latency) and the lr, both objectives, tracked in the
    default MLflow store; latency_ms named first (either order is accepted)."""
    tmp = tmp_path_factory.mktemp("multi")
    spec = write_spec(tmp / "spec.yaml", tiny_spec(synthetic_data, tmp / "unused"))
    sweep = tmp / "results" / "front"
    proc = automl(
        *sweep_args(spec, sweep, "--algorithm", "hyperband", "--trials", str(TRIALS)),
        "--objectives", "latency_ms,val_mAP50",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return sweep, json.loads((sweep / "summary.json").read_text())


def test_every_trial_is_measured_before_training_and_the_front_is_the_non_dominated_set(front_sweep) -> None:
    _, summary = front_sweep
    assert summary["objectives"] == [
        {"name": "latency_ms", "direction": "minimize"},
        {"name": "val_mAP50", "direction": "maximize"},
    ]
    assert summary["metric"]["name"] == "val_mAP50"  # the training objective: pruning, best trial
    trials = summary["trials"]
    assert len(trials) == TRIALS and all(t["latency_ms"] > 0 for t in trials)
    trained = [t for t in trials if t["state"] == "COMPLETE"]
    front = summary["pareto_front"]
    assert front and {e["trial"] for e in front} <= {t["number"] for t in trained}

    def dominated(t: dict[str, Any]) -> bool:
        return any(
            o["value"] >= t["value"]
            and o["latency_ms"] <= t["latency_ms"]
            and (o["value"] > t["value"] or o["latency_ms"] < t["latency_ms"])
            for o in trained
        )

    for entry in front:  # on the front: no trained trial is as good in both and better in one
        trial = next(t for t in trained if t["number"] == entry["trial"])
        assert not dominated(trial)
        assert entry["latency_ms"] == trial["latency_ms"] and entry["val_mAP50"] == trial["value"]
    off = [t for t in trained if t["number"] not in {e["trial"] for e in front}]
    points = {(e["val_mAP50"], e["latency_ms"]) for e in front}
    assert all(dominated(t) or (t["value"], t["latency_ms"]) in points for t in off)
    values = [e["val_mAP50"] for e in front]
    assert values == sorted(values, reverse=True)  # most accurate first
    assert summary["best"]["trial"] == front[0]["trial"] or summary["best"]["value"] == front[0]["val_mAP50"]


def test_the_study_has_both_objectives_and_hyperband_prunes_on_the_metric_alone(front_sweep) -> None:
    sweep, summary = front_sweep
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(sweep / "optuna.journal")))
    study = optuna.load_study(study_name=sweep.name, storage=storage)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    by_number = {t["number"]: t for t in summary["trials"]}
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        record = by_number[trial.number]
        assert trial.values == [record["latency_ms"], record["value"]]
    twin = optuna.load_study(study_name=f"{sweep.name}.fidelity", storage=storage)
    assert twin.direction == optuna.study.StudyDirection.MAXIMIZE
    assert twin.pruner is not None and len(twin.trials) == TRIALS
    for shadow in twin.trials:  # the epochs' best-so-far values, as a single-objective sweep reports them
        record = by_number[shadow.user_attrs["twin_of"]]
        assert shadow.state.name == record["state"]
        assert max(shadow.intermediate_values.values()) == pytest.approx(record["value"])


def test_status_and_mlflow_show_the_front(front_sweep) -> None:
    sweep, summary = front_sweep
    numbers = {e["trial"] for e in summary["pareto_front"]}
    status = automl("status", str(sweep), timeout=120)
    assert status.returncode == 0, status.stderr
    assert "pareto" in status.stdout
    rows = [line for line in status.stdout.splitlines() if "COMPLETE" in line]
    marked = {int(line.strip("│┃ ").split()[0]) for line in rows if "front" in line}
    assert marked == numbers
    client = MlflowClient(f"sqlite:///{sweep.parent / 'mlflow.db'}")
    ids = json.loads((sweep / "tracking.json").read_text())
    parent = client.get_run(ids["parent_run_id"])
    assert set(parent.data.tags["pareto_front"].split(",")) == {str(n) for n in numbers}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "pareto")}
    assert {"pareto/pareto_front.png", "pareto/pareto_front.json"} <= artifacts
    for trial in summary["trials"]:
        if trial["state"] == "COMPLETE":
            run = client.get_run(ids["trials"][str(trial["number"])])
            assert run.data.tags["pareto_front"] == ("true" if trial["number"] in numbers else "false")
            assert run.data.metrics["latency_ms"] == trial["latency_ms"]


def test_an_infeasible_trial_is_rejected_before_training_and_is_never_on_the_front(
    synthetic_data: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused"))
    sweep = tmp_path / "results" / "limited"
    proc = automl(
        *sweep_args(spec, sweep, "--algorithm", "random", "--trials", "2", "--no-track"),
        "--objectives", "val_mAP50,latency_ms", "--max-latency-ms", "0.001",
    )  # fmt: skip
    assert proc.returncode != 0
    assert "over --max-latency-ms" in proc.stdout + proc.stderr
    summary = json.loads((sweep / "summary.json").read_text())
    for trial in summary["trials"]:
        assert (
            trial["state"] == "PRUNED" and trial["failure_class"] == "infeasible" and trial["latency_ms"] > 0
        )
        status = Path(trial["folder"]) / "train" / "status.json"
        assert not status.exists() or "val_mAP50" not in status.read_text()  # never trained
    assert summary["pareto_front"] == []


def test_objectives_are_checked_before_any_compute() -> None:
    settings = parse_settings({"objectives": "latency_ms,val_loss"})
    assert settings.metric == "val_loss" and settings.direction == "minimize"
    assert settings.objectives == (("latency_ms", "minimize"), ("val_loss", "minimize"))
    refused = {
        "val_mAP50": "two objectives",
        "val_mAP50,val_loss": "two objectives",
        "val_mAP50,latency_ms,val_loss": "two objectives",
        "val_mAP50,latency_ms:max": "latency_ms is minimized",
        "val_mAP50:up,latency_ms": "unknown direction",
        "latency_ms,latency_ms": "given twice",
    }
    for value, message in refused.items():
        with pytest.raises(SettingError, match=message):
            parse_settings({"objectives": value})
    with pytest.raises(SettingError, match="optuna backend only"):
        parse_settings({"objectives": "val_mAP50,latency_ms", "backend": "ray"})
    with pytest.raises(SettingError, match="metric=val_loss"):
        parse_settings({"objectives": "val_mAP50,latency_ms", "metric": "val_loss"})
    with pytest.raises(SettingError, match="pbt"):
        parse_settings({"objectives": "val_mAP50,latency_ms", "automl_algorithm": "pbt"})


def test_the_cli_refuses_bad_objectives_naming_the_flag(tmp_path: Path) -> None:
    proc = automl(
        "run", "--objectives", "val_mAP50,latency_ms:max", "--results-dir", str(tmp_path), timeout=120
    )
    assert proc.returncode == 2 or proc.returncode == 1
    assert "objectives" in proc.stderr and "latency_ms is minimized" in proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())


def record(number: int, value: float | None, latency: float | None, state: TrialState = TrialState.COMPLETE):
    return TrialRecord(number, state=state, value=value, latency_ms=latency)


def test_the_front_keeps_non_dominated_trials_once_and_honours_the_direction() -> None:
    records = [
        record(0, 0.5, 10.0),
        record(1, 0.7, 12.0),
        record(2, 0.4, 11.0),  # dominated by 0
        record(3, 0.7, 12.0),  # a tie with 1: the earliest stands for it
        record(4, 0.9, 30.0),
        record(5, None, 1.0, TrialState.PRUNED),  # infeasible: never trained
        record(6, 0.2, 5.0),
        record(7, 0.95, None),  # no latency: not comparable
    ]
    front = pareto_front(records, Objective("val_mAP50", "maximize"))
    assert [r.number for r in front] == [4, 1, 0, 6]
    losses = pareto_front(
        [record(0, 0.3, 10.0), record(1, 0.2, 20.0), record(2, 0.4, 15.0)], Objective("val_loss", "minimize")
    )
    assert [r.number for r in losses] == [1, 0]


def test_of_equally_accurate_trials_the_fastest_is_best_so_the_best_is_on_the_front() -> None:
    trials = [record(0, 0.5, 9.0), record(1, 0.5, 7.0), record(2, 0.4, 1.0), record(3, 0.5, 7.0)]
    best = best_trial(trials, multi_fidelity=False, objective=Objective("val_mAP50", "maximize"))
    assert best is not None and best.number == 1  # the faster of the two tied at 7 ms is the earlier
    assert pareto_front(trials, Objective("val_mAP50", "maximize"))[0].number == 1
    unmeasured = [record(0, 0.5, None), record(1, 0.5, None)]
    assert (
        best_trial(unmeasured, multi_fidelity=False, objective=Objective("val_mAP50", "maximize")).number == 0
    )


def test_pipeline_pareto_is_refused_without_objectives_before_any_compute(tmp_path: Path) -> None:
    proc = automl("run", "--pipeline", "pareto", "--results-dir", str(tmp_path), timeout=120)
    assert proc.returncode != 0
    assert "--pipeline pareto" in proc.stderr and "--objectives" in proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())


def test_the_pareto_pipeline_deploys_every_front_trial_with_its_mAP_and_deployed_latency(front_sweep) -> None:
    """Last in the module: it adds the pipelines to the sweep the tests above read. At this size every
    trial scores 0.0 after 2 epochs, so the sweep's own front is its fastest trial, which is also its
    best (ties go to the faster network); a second complete trial joins the front here so that one
    front trial is deployed beside the best."""
    sweep, summary = front_sweep
    best = summary["best"]["trial"]
    assert [e["trial"] for e in summary["pareto_front"]][:1] == [best]
    if len(summary["pareto_front"]) == 1:
        other = next(t for t in summary["trials"] if t["state"] == "COMPLETE" and t["number"] != best)
        summary["pareto_front"].append(
            {
                "trial": other["number"],
                "val_mAP50": other["value"],
                "latency_ms": other["latency_ms"],
                "best_epoch": other["best_epoch"],
                "checkpoint": other["checkpoint"],
            }
        )
        (sweep / "summary.json").write_text(json.dumps(summary, indent=2))
    proc = automl("pipeline", str(sweep), "--pareto", timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    front = [e["trial"] for e in summary["pareto_front"]]
    runs = summary["pareto_pipelines"]
    assert sorted(runs) == sorted(f"{n:04d}" for n in front)
    searched = {t["number"]: t["latency_ms"] for t in summary["trials"]}
    for number in front:
        steps = runs[f"{number:04d}"]
        assert steps["status"] == "FINISHED" and steps["trial"] == number
        deployed = steps["engine_evaluate"]
        assert deployed["state"] == "SUCCESS" and deployed["model"] == "onnx"
        assert 0.0 <= deployed["metrics"]["test_mAP50"] <= 1.0
        latency = deployed["latency"]
        assert latency["model"] == deployed["deployed_model"] and latency["runtime"] == "onnxruntime-cpu"
        assert deployed["metrics"]["latency_ms"] == latency["latency_ms"] > 0
        # the trained, exported file: the same network as the one the search timed untrained
        assert latency["architecture"] and latency["threads"] >= 1
        assert 0.2 < latency["latency_ms"] / searched[number] < 5.0
        expected = sweep / ("best" if number == summary["best"]["trial"] else f"pareto/{number:04d}")
        assert Path(deployed["deployed_model"]).parent.parent == expected.resolve()
    assert summary["pipeline"]["engine_evaluate"]["metrics"]["latency_ms"] > 0  # the best one's
    for number in front:
        assert f"pareto trial {number}: " in proc.stdout
    client = MlflowClient(f"sqlite:///{sweep.parent / 'mlflow.db'}")
    ids = json.loads((sweep / "tracking.json").read_text())
    steps = client.search_runs(
        [client.get_run(ids["parent_run_id"]).info.experiment_id],
        f"tags.mlflow.parentRunId = '{ids['parent_run_id']}' and tags.step LIKE 'pareto-%'",
    )
    others = [n for n in front if n != summary["best"]["trial"]]
    names = {r.data.tags["step"] for r in steps}
    assert {f"pareto-{n:04d}-engine_evaluate" for n in others} <= names
    for run in steps:
        if run.data.tags["step"].endswith("engine_evaluate"):
            assert run.data.metrics["latency_ms"] > 0
