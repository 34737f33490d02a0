"""The backend contract: the same sweeps, run on every backend, give the same results.

Each backend class below runs the same cases with real trial processes on the tiny preset: the
summary and trial record fields, the choice of the best trial and its checkpoint for a *minimized*
metric (``metric=val_loss``), the hand-off to the pipeline, failure classes and the shared cause,
the time-budget stop, and a resume after the orchestrator is killed with SIGKILL. A new backend is
one module under ``automl/backends/`` and one class here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import tiny_spec, write_spec

pytestmark = pytest.mark.slow

SUMMARY_FIELDS = {
    "name",
    "status",
    "started",
    "action",
    "metric",
    "policy",
    "backend",
    "algorithm",
    "settings",
    "config",
    "space",
    "max_epochs",
    "trials",
    "best",
    "pipeline",
    "stopped_early",
    "failure",
    "finished",
    "updated",
}
TRIAL_FIELDS = {
    "number",
    "state",
    "params",
    "folder",
    "started",
    "value",
    "best_epoch",
    "last_epoch",
    "last_value",
    "checkpoint",
    "seconds",
    "failure_class",
    "error",
    "log",
}
BEST_FIELDS = {"trial", "params", "value", "metric", "best_epoch", "last_value", "checkpoint", "folder"}


def automl(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text())


def epoch_values(folder: Path, metric: str) -> dict[int, float]:
    lines = [json.loads(s) for s in (folder / "train" / "status.json").read_text().splitlines() if s.strip()]
    return {
        s["epoch"]: float(s["kpi"][metric])
        for s in lines
        if s["status"] == "RUNNING" and metric in s.get("kpi", {})
    }


class BackendContract:
    """The cases; a subclass names the backend and its extra ``automl run`` arguments."""

    backend: ClassVar[str]

    def extra(self, folder: Path) -> list[str]:
        return ["--backend", self.backend]

    def run(self, spec: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
        return automl(
            *["run", "-e", str(spec), "--results-dir", str(folder.parent)],
            *["--name", folder.name, "--no-pipeline", *self.extra(folder), *args],
        )

    @pytest.fixture(scope="class")
    def spec(self, synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        folder = tmp_path_factory.mktemp(f"contract-{self.backend}")
        return write_spec(
            folder / "spec.yaml", tiny_spec(synthetic_data, folder / "unused", train={"num_epochs": 3})
        )

    @pytest.fixture(scope="class")
    def loss_sweep(self, spec: Path) -> tuple[subprocess.CompletedProcess, Path]:
        folder = spec.parent / "loss"
        proc = self.run(
            spec,
            folder,
            *["--trials", "2", "--max-epochs", "3", "--seed", "0", "--algorithm", "random"],
            *["--setting", "metric=val_loss", "--param", "train.optim.lr=1e-4:3e-3:log", "--no-track"],
        )
        return proc, folder

    def test_the_same_fields_and_a_minimized_metrics_best_epoch(self, loss_sweep) -> None:
        proc, folder = loss_sweep
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        data = summary(folder)
        assert SUMMARY_FIELDS <= set(data), SUMMARY_FIELDS - set(data)
        assert data["status"] == "FINISHED" and data["backend"] == self.backend
        assert data["metric"]["name"] == "val_loss" and data["metric"]["direction"] == "minimize"
        trials = data["trials"]
        missing = [TRIAL_FIELDS - set(t) for t in trials]
        assert len(trials) == 2 and not any(missing), missing
        for t in trials:  # each trial's score is its lowest val_loss, and the checkpoint is that epoch's
            values = epoch_values(Path(t["folder"]), "val_loss")
            lowest = min(values, key=lambda e: (values[e], e))
            assert t["best_epoch"] == lowest and t["value"] == pytest.approx(values[lowest]), (t, values)
            assert t["checkpoint"] == str(Path(t["folder"]) / "train" / f"model_epoch_{lowest:03d}.pth")
            assert Path(t["checkpoint"]).is_file()
        best = data["best"]
        assert set(best) == BEST_FIELDS and best["metric"] == "val_loss"
        scored = [t for t in trials if t["state"] in ("COMPLETE", "PRUNED")]
        assert best["value"] == min(t["value"] for t in scored)

    def test_the_pipeline_gets_the_best_trials_checkpoint(self, loss_sweep) -> None:
        _, folder = loss_sweep
        best = summary(folder)["best"]
        shown = automl("best", str(folder), "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout) == best
        from automl.pipeline.best_trial import pipeline_spec

        trial_spec = Path(best["folder"]) / "spec.yaml"
        import yaml

        spec, _ = pipeline_spec(yaml.safe_load(trial_spec.read_text()), folder / "best")
        assert spec["results_dir"] == str(folder / "best")
        status = automl("status", str(folder))
        assert status.returncode == 0 and f"best: trial {best['trial']} val_loss=" in status.stdout

    def test_failures_keep_their_class_and_stop_the_sweep_with_the_shared_cause(self, spec: Path) -> None:
        # batch 64 on a 16-image train set: no training step, a data error
        folder = spec.parent / "fail"
        proc = self.run(
            spec,
            folder,
            *["--trials", "3", "--max-epochs", "1", "--no-track"],
            *["--setting", "automl_hyperparameters=[dataset.batch_size]"],
            *["--param", "dataset.batch_size=64,128"],
        )
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
        data = summary(folder)
        assert data["status"] == "FAILED" and data["best"] is None
        assert len(data["trials"]) == 3 and {t["state"] for t in data["trials"]} == {"FAIL"}
        assert {t["failure_class"] for t in data["trials"]} == {"data_error"}
        assert "all 3 trials failed; 3 with data_error" in data["failure"]
        assert "the sweep found no result" in proc.stdout

    def test_the_time_budget_stops_the_search_and_keeps_the_result(self, spec: Path) -> None:
        folder = spec.parent / "budget"
        proc = self.run(
            spec,
            folder,
            *["--trials", "4", "--max-epochs", "3", "--seed", "0"],
            *["--concurrency", "1", "--time-budget", "1s", "--no-track"],
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        data = summary(folder)
        assert data["stopped_early"] == "time budget used up"
        stopped = [t for t in data["trials"] if t["state"] == "PRUNED"]
        assert len(data["trials"]) < 4 and stopped
        assert all(t["error"] == f"stopped at the time budget after epoch {t['last_epoch']}" for t in stopped)
        assert data["best"] is not None and Path(data["best"]["checkpoint"]).is_file()

    def test_a_resume_after_sigkill_finishes_the_budget_from_the_checkpoints(self, spec: Path) -> None:
        folder = spec.parent / "killed"
        cmd = [
            *[sys.executable, "-m", "automl.cli", "run", "-e", str(spec)],
            *["--results-dir", str(folder.parent), "--name", folder.name, "--no-pipeline"],
            *["--no-track", *self.extra(folder), "--trials", "2", "--max-epochs", "3"],
            *["--concurrency", "1", "--seed", "5", "--algorithm", "random"],
        ]
        driver = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        try:
            deadline = time.time() + 400
            while time.time() < deadline:  # the first trial has saved a checkpoint
                if list((folder / "trials" / "0000" / "train").glob("model_epoch_*.pth")):
                    break
                time.sleep(0.5)
            else:
                pytest.fail("the first trial never saved a checkpoint")
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait(timeout=30)
        time.sleep(5)  # the orphaned trial gets SIGTERM from the kernel (parent-death signal) and saves
        assert summary(folder)["status"] == "RUNNING"
        resumed = automl("run", "--resume", str(folder))
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        data = summary(folder)
        assert data["status"] == "FINISHED"
        counted = [t for t in data["trials"] if not t.get("requeued")]
        assert len(counted) == 2 and {t["state"] for t in counted} == {"COMPLETE"}
        logs = "".join(Path(t["log"]).read_text() for t in counted)
        assert "Resuming from" in logs  # the interrupted trial went on from its checkpoint
        assert data["best"] is not None and Path(data["best"]["checkpoint"]).is_file()


class TestOptuna(BackendContract):
    backend = "optuna"


class TestOptunaSharedStorage(BackendContract):
    """A journal storage that `automl worker` processes may join: the storage is the sweep's ledger."""

    backend = "optuna"

    def extra(self, folder: Path) -> list[str]:
        return ["--backend", "optuna", "--storage", str(folder.parent / f"{folder.name}.journal")]


class TestRayTune(BackendContract):
    backend = "ray"
