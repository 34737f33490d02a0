"""`automl run` end to end with real trial processes on the tiny preset and synthetic data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TAO_SKILL, tiny_spec, write_spec

pytestmark = pytest.mark.slow


def automl(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    if args and args[0] == "run":  # the best-trial pipeline has its own tests (test_pipeline.py)
        args = (*args, "--no-pipeline")
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture()
def spec_file(synthetic_data: Path, tmp_path: Path) -> Path:
    return write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 2})
    )


def test_search_runs_trials_and_picks_the_best(spec_file, tmp_path):
    proc = automl("run", "-e", str(spec_file), "--trials", "3", "--max-epochs", "2", "--results-dir", str(tmp_path),
                  "--name", "s1", "--seed", "0", "--param", "train.optim.lr=1e-4:3e-3:log")  # fmt: skip
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
    proc = automl("run", "-e", str(spec_file), "--trials", "3", "--max-epochs", "1", "--results-dir", str(tmp_path),
                  "--name", "s2", "--algorithm", "random", "--seed", "3", "--setting", "run_baseline=true",
                  "--setting", "automl_hyperparameters=[dataset.batch_size]", "--param", "dataset.batch_size=4,64")  # fmt: skip
    data = summary(tmp_path / "s2")
    states = {t["params"]["dataset.batch_size"]: t for t in data["trials"]}
    assert 64 in states and 4 in states, data["trials"]
    failed = states[64]
    assert failed["state"] == "FAIL" and failed["failure_class"] == "data_error"
    assert "batch" in failed["error"]
    assert states[4]["state"] == "COMPLETE" and data["trials"][0]["params"]["dataset.batch_size"] == 4
    assert proc.returncode == 0 and data["best"]["params"]["dataset.batch_size"] == 4


def test_every_trial_failing_stops_the_sweep_with_the_shared_cause(spec_file, tmp_path):
    proc = automl("run", "-e", str(spec_file), "--trials", "6", "--max-epochs", "1", "--results-dir", str(tmp_path),
                  "--name", "s3", "--setting", "automl_hyperparameters=[dataset.batch_size]",
                  "--param", "dataset.batch_size=64,128")  # fmt: skip
    assert proc.returncode == 1
    data = summary(tmp_path / "s3")
    assert data["status"] == "FAILED" and len(data["trials"]) == 3  # stopped early, not 6
    assert "all 3 trials failed" in data["failure"] and "data_error" in data["failure"]
    assert "the sweep found no result" in proc.stdout


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


def test_sweep_driven_by_taos_packaged_schema(spec_file, tmp_path):
    schema = TAO_SKILL / "schemas" / "train.schema.json"
    if not schema.is_file():
        pytest.skip(f"NVIDIA's packaged schema is not at {schema}")
    proc = automl("run", "-e", str(spec_file), "--schema", str(schema), "--trials", "2", "--max-epochs", "1",
                  "--results-dir", str(tmp_path), "--name", "tao", "--seed", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = summary(tmp_path / "tao")
    assert data["config"]["schema"] == str(schema)
    searched = {p["name"] for p in data["space"]["params"]}
    assert {"train.optim.lr", "model.dec_layers", "model.num_queries"} <= searched
    excluded = {e["name"] for e in data["space"]["excluded"]}
    assert "train.optim.momentum" in excluded
    assert len(data["trials"]) == 2 and data["best"] is not None


def test_resume_after_the_orchestrator_is_killed(spec_file, tmp_path):
    cmd = [sys.executable, "-m", "automl.cli", "run", "-e", str(spec_file), "--trials", "2", "--max-epochs", "3",
           "--results-dir", str(tmp_path), "--name", "r", "--algorithm", "random", "--seed", "5"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    folder = tmp_path / "r"
    deadline = time.time() + 300
    # wait until the second trial has saved at least one checkpoint
    while time.time() < deadline:
        ckpts = list((folder / "trials" / "0001" / "train").glob("model_epoch_*.pth"))
        if ckpts:
            break
        time.sleep(0.5)
    assert ckpts, "the second trial never saved a checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(3)  # the orphaned trial gets SIGTERM from the kernel (parent-death signal) and saves
    before = summary(folder)
    assert before["trials"][0]["state"] == "COMPLETE" and before["trials"][1]["state"] == "RUNNING"
    first_seconds = before["trials"][0]["seconds"]
    resumed = automl("run", "--resume", str(folder))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    data = summary(folder)
    states = [(t["number"], t["state"], bool(t.get("requeued"))) for t in data["trials"]]
    assert states[0] == (0, "COMPLETE", False) and data["trials"][0]["seconds"] == first_seconds  # not re-run
    assert states[1] == (1, "FAIL", True)
    rerun = data["trials"][2]
    assert rerun["state"] == "COMPLETE" and rerun["params"] == data["trials"][1]["params"]
    assert "Resuming from" in Path(rerun["log"]).read_text()
    finished = [t for t in data["trials"] if not t.get("requeued")]
    assert len(finished) == 2 and data["status"] == "FINISHED"


def test_time_budget_stops_the_search_and_keeps_what_it_learned(spec_file, tmp_path):
    # a budget this small is used up before the first validation: that trial stops there and no other starts
    proc = automl("run", "-e", str(spec_file), "--trials", "4", "--max-epochs", "2", "--results-dir", str(tmp_path),
                  "--name", "tb", "--seed", "0", "--time-budget", "1s", "--no-track")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = summary(tmp_path / "tb")
    assert data["settings"]["time_budget"] == 1.0
    assert len(data["trials"]) == 1 and data["stopped_early"] == "time budget used up"
    trial = data["trials"][0]
    # the stop is asked for at the first validation; a fast trial may finish one more epoch before it lands
    assert trial["state"] == "PRUNED" and trial["last_epoch"] in (0, 1)
    assert trial["error"] == f"stopped at the time budget after epoch {trial['last_epoch']}"
    assert data["best"]["trial"] == 0 and Path(data["best"]["checkpoint"]).is_file()
