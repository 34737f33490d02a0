"""Tracking through a real ``mlflow server``, including the server dying mid-sweep and ``automl sync``."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from automl.tracking.sync import sync_sweep
from automl.tracking.tracker import Tracker
from tests.automl.synthetic_sweep import BEST, TRIALS, run_sweep
from tests.mlflow_server import MlflowServer

EXPERIMENT = "server-test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def counts(client: MlflowClient, experiment: str) -> tuple[int, int]:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    points = sum(len(client.get_metric_history(r.info.run_id, k)) for r in runs for k in r.data.metrics)
    return len(runs), points


def test_sweep_tracked_through_a_server(server: MlflowServer, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep-served"
    tracker = Tracker.open(server.url, EXPERIMENT, sweep)
    run_sweep(tracker, sweep)
    assert not tracker.degraded and tracker.missed == []
    client = MlflowClient(server.url)
    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.params["best.model.backbone"] == "resnet_34"
    for number, (_state, params, values) in TRIALS.items():
        run = client.get_run(tracker.run_id(number))
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params == {k: str(v) for k, v in params.items()}
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mAP50")] == list(
            range(len(values))
        )
        assert {"spec.yaml", "train", "trial_log_tail.txt"} <= {
            a.path for a in client.list_artifacts(run.info.run_id)
        }
    (version,) = client.search_model_versions(f"name = '{EXPERIMENT}-rtdetr'")
    assert version.run_id == tracker.run_id(BEST) and version.tags["automl.sweep.loop"] == "sweep-served"
    # artifacts went through the server into its --artifacts-destination
    assert list((server.root / "artifacts").rglob("model_epoch_002.pth"))


def test_server_dying_mid_sweep_then_sync_fills_the_gaps(
    server: MlflowServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sweep = tmp_path / "sweep-interrupted"
    caplog.set_level(logging.INFO, logger="automl.tracking.tracker")
    tracker = Tracker.open(server.url, f"{EXPERIMENT}-2", sweep)
    stopped_at: list[float] = []

    def kill_server() -> None:
        server.stop()
        stopped_at.append(time.monotonic())

    run_sweep(tracker, sweep, stop_after=(1, 1), hook=kill_server)  # never raises
    assert time.monotonic() - stopped_at[0] < 30, "a dead server stalled the sweep"
    assert tracker.degraded and any("trial 2" in m for m in tracker.missed)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"automl sync {sweep}" in warnings[0]

    server.start()
    client = MlflowClient(server.url)
    partial_runs, partial_points = counts(client, f"{EXPERIMENT}-2")
    assert partial_runs == 3  # the sweep run, trial 0 and trial 1 (cut after epoch 1)
    report = sync_sweep(sweep, server.url, f"{EXPERIMENT}-2")
    assert report.runs_created == 2 and report.metric_points > 0
    runs, points = counts(client, f"{EXPERIMENT}-2")
    assert runs == 1 + len(TRIALS) and points > partial_points
    for number, (state, _, values) in TRIALS.items():
        run_id = report_run_id(client, f"{EXPERIMENT}-2", number)
        history = client.get_metric_history(run_id, "val_mAP50")
        assert sorted(m.step for m in history) == list(range(len(values))), number
        assert client.get_run(run_id).info.status == ("FAILED" if state == "FAIL" else "FINISHED")
    parent = client.get_run(report.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["best.trial"] == str(BEST)
    assert len(client.search_model_versions(f"name = '{EXPERIMENT}-2-rtdetr'")) == 1

    again = sync_sweep(sweep, server.url, f"{EXPERIMENT}-2")
    assert (again.runs_created, again.metric_points) == (0, 0)
    assert counts(client, f"{EXPERIMENT}-2") == (runs, points)
    assert len(client.search_model_versions(f"name = '{EXPERIMENT}-2-rtdetr'")) == 1


def report_run_id(client: MlflowClient, experiment: str, number: int) -> str:
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`automl.trial` = '{number}'")
    return run.info.run_id


@pytest.mark.slow
def test_real_sweep_to_a_server_that_dies_midway(server, synthetic_data, tmp_path):
    """`automl run --tracking-uri http://...` with real trials; the server stops during a second
    sweep, which still finishes; `automl sync` then fills in what was missing, once."""
    import json
    import os
    import sys

    from tests.conftest import tiny_spec, write_spec

    spec = write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 2})
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --no-pipeline: the pipeline steps are child runs too (tests/automl/test_pipeline.py)
    base = [
        *[sys.executable, "-m", "automl.cli", "run", "-e", str(spec), "--trials", "2", "--max-epochs", "2"],
        *["--results-dir", str(tmp_path), "--tracking-uri", server.url, "--experiment", "real-sweep"],
        "--no-pipeline",
    ]
    first = subprocess.run([*base, "--name", "one"], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    client = MlflowClient(tracking_uri=server.url)
    experiment = client.get_experiment_by_name("real-sweep")

    def runs_of(sweep: str) -> tuple[list, list]:
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if r.info.run_name == sweep]
        ids = {p.info.run_id for p in parents}
        return parents, [r for r in runs if r.data.tags.get("mlflow.parentRunId") in ids]

    parents, children = runs_of("one")
    assert len(parents) == 1 and len(children) == 2
    assert len(client.get_metric_history(children[0].info.run_id, "val_mAP50")) == 2

    proc = subprocess.Popen(
        [*base, "--name", "two"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    summary = tmp_path / "two" / "summary.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if summary.exists() and json.loads(summary.read_text())["trials"]:
            break
        time.sleep(0.5)
    server.stop()
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert json.loads(summary.read_text())["status"] == "FINISHED"
    assert "automl sync" in out  # the sweep said what was not logged and how to fix it
    server.start()
    client = MlflowClient(tracking_uri=server.url)
    synced = subprocess.run(
        [sys.executable, "-m", "automl.cli", "sync", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert synced.returncode == 0, synced.stderr[-3000:]
    parents, children = runs_of("two")
    assert len(parents) == 1 and len(children) == 2
    points = sum(len(client.get_metric_history(c.info.run_id, "val_mAP50")) for c in children)
    assert points == 4
    again = subprocess.run(
        [sys.executable, "-m", "automl.cli", "sync", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert again.returncode == 0
    parents, children = runs_of("two")
    assert len(parents) == 1 and len(children) == 2
    assert sum(len(client.get_metric_history(c.info.run_id, "val_mAP50")) for c in children) == points
