"""`automl run` end to end with real trial processes on the tiny preset and synthetic data.

What every backend must do alike (failure classes, the time budget, a resume after SIGKILL, a
minimized metric) is in test_backend_contract.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_spec, write_spec

pytestmark = pytest.mark.slow


def automl(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    if args and args[0] == "run":  # the best-trial pipeline has its own tests (test_pipeline.py)
        args = (*args, "--no-pipeline")
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture()
def spec_file(synthetic_data: Path, tmp_path: Path) -> Path:
    return write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 2})
    )


def test_search_runs_trials_and_picks_the_best(spec_file, tmp_path):
    proc = automl(
        *["run", "-e", str(spec_file), "--trials", "3", "--max-epochs", "2"],
        *["--results-dir", str(tmp_path), "--name", "s1", "--seed", "0"],
        *["--param", "train.optim.lr=1e-4:3e-3:log"],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = summary(tmp_path / "s1")
    assert data["status"] == "FINISHED" and data["policy"]["decision"] == "auto"
    assert data["backend"] == "optuna" and data["algorithm"]["sampler"] == "tpe"
    trials = data["trials"]
    assert len(trials) == 3 and all(t["state"] in ("COMPLETE", "PRUNED") for t in trials)
    assert all("train.optim.lr" in t["params"] for t in trials)
    lrs = {t["params"]["train.optim.lr"] for t in trials}
    assert len(lrs) == 3 and all(1e-4 <= lr <= 3e-3 for lr in lrs)
    best = data["best"]
    scored = [t for t in trials if t["state"] == "COMPLETE"]
    assert best["value"] == max(t["value"] for t in scored)
    assert Path(best["checkpoint"]).is_file()
    # the trial folder is a results_dir of its own, in TAO's layout
    folder = Path(trials[0]["folder"])
    assert (folder / "spec.yaml").is_file() and (folder / "train" / "status.json").is_file()
    assert "AutoML: search" in proc.stdout and "sweep folder:" in proc.stdout
    # every trial is an MLflow child run of the sweep in the default SQLite store under the results dir
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("automl")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 3
    history = client.get_metric_history(children[0].info.run_id, "val_mAP50")
    assert [m.step for m in history] == [0, 1]
    assert any(k.startswith("train.optim.lr") for k in children[0].data.params)
    assert {c.data.tags.get("state") for c in children} <= {"COMPLETE", "PRUNED"}
    artifacts = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert "spec.yaml" in artifacts
    versions = client.search_model_versions("name = 'automl-rtdetr'")
    assert len(versions) == 1 and versions[0].tags.get("automl.trial") == str(best["trial"])
    status = automl("status", str(tmp_path / "s1"))
    assert status.returncode == 0 and "COMPLETE" in status.stdout and "best: trial" in status.stdout
    best_cli = automl("best", str(tmp_path / "s1"), "--json")
    assert json.loads(best_cli.stdout)["checkpoint"] == best["checkpoint"]


def test_failed_trial_is_recorded_and_the_sweep_goes_on(spec_file, tmp_path):
    # batch 64 on a 16-image train set is the zero-step trap: that trial fails with a data error;
    # the baseline trial runs the spec's own batch size (4)
    proc = automl(
        *["run", "-e", str(spec_file), "--trials", "3", "--max-epochs", "1"],
        *["--results-dir", str(tmp_path), "--name", "s2", "--algorithm", "random", "--seed", "3"],
        *["--setting", "run_baseline=true", "--setting", "automl_hyperparameters=[dataset.batch_size]"],
        *["--param", "dataset.batch_size=4,64"],
    )
    data = summary(tmp_path / "s2")
    states = {t["params"]["dataset.batch_size"]: t for t in data["trials"]}
    assert 64 in states and 4 in states, data["trials"]
    failed = states[64]
    assert failed["state"] == "FAIL" and failed["failure_class"] == "data_error"
    assert "batch" in failed["error"]
    assert states[4]["state"] == "COMPLETE" and data["trials"][0]["params"]["dataset.batch_size"] == 4
    assert proc.returncode == 0 and data["best"]["params"]["dataset.batch_size"] == 4


@pytest.mark.parametrize(
    ("flags", "reason"),
    [(["--policy", "off"], "--policy"), (["--request", "Plain training please, no tuning"], "request")],
)
def test_plain_training_goes_through_the_same_path(flags, reason, spec_file, tmp_path):
    proc = automl("run", "-e", str(spec_file), "--results-dir", str(tmp_path), "--name", "plain", *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = summary(tmp_path / "plain")
    assert data["policy"]["decision"] == "off" and reason in data["policy"]["reason"]
    assert (
        len(data["trials"]) == 1
        and data["trials"][0]["state"] == "COMPLETE"
        and data["trials"][0]["params"] == {}
    )
    assert data["best"]["trial"] == 0 and data["space"] is None
    assert "AutoML: plain training" in proc.stdout


def test_sweep_driven_by_taos_packaged_schema(spec_file, tmp_path, tao_skill):
    schema = tao_skill / "schemas" / "train.schema.json"
    proc = automl(
        *["run", "-e", str(spec_file), "--schema", str(schema), "--trials", "2"],
        *["--max-epochs", "1", "--results-dir", str(tmp_path), "--name", "tao", "--seed", "1"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = summary(tmp_path / "tao")
    assert data["config"]["schema"] == str(schema)
    searched = {p["name"] for p in data["space"]["params"]}
    assert {"train.optim.lr", "model.dec_layers", "model.num_queries"} <= searched
    excluded = {e["name"] for e in data["space"]["excluded"]}
    assert "train.optim.momentum" in excluded
    assert len(data["trials"]) == 2 and data["best"] is not None


def test_plain_training_resumes_after_the_orchestrator_is_killed(synthetic_data, tmp_path):
    spec = write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 3})
    )
    folder = tmp_path / "pk"
    cmd = [
        *[sys.executable, "-m", "automl.cli", "run", "-e", str(spec), "--policy", "off"],
        *["--results-dir", str(tmp_path), "--name", "pk", "--no-pipeline", "--no-track"],
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    deadline = time.time() + 300
    first_trial = folder / "trials" / "0000" / "train"
    while time.time() < deadline and not list(first_trial.glob("model_epoch_*.pth")):
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(3)  # the orphaned trial gets SIGTERM from the kernel (parent-death signal) and saves
    assert summary(folder)["trials"][0]["state"] == "RUNNING"
    resumed = automl("run", "--resume", str(folder))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    data = summary(folder)
    assert [(t["number"], t["state"], bool(t.get("requeued"))) for t in data["trials"]] == [
        (0, "FAIL", True),
        (1, "COMPLETE", False),
    ]
    assert "Resuming from" in Path(data["trials"][1]["log"]).read_text()
    assert data["status"] == "FINISHED" and data["best"]["trial"] == 1
