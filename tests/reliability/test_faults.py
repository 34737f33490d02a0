"""Fault injection: real sweeps on the tiny preset (real `automl run`, real torchrun trials, a real
MLflow server) hit by what a machine does to them, each case then checked three ways:

- no completed trial is lost (still COMPLETE, with the same value and checkpoint),
- none runs again (its training's status.json is unchanged, byte for byte),
- no process of the sweep is left (the process table has none whose command names the sweep).

The faults: kill -9 of the orchestrator mid-trial, then --resume; kill -9 of a trial's training
process; a torn journal and a torn summary.json, then --resume --rebuild-study; the tracking server
dying mid-sweep; Ctrl-C (SIGINT); every trial failing; the disk filling up (a small tmpfs when this
machine allows mounting one, else a write that raises ENOSPC, in test_disk_full.py).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import tiny_spec, write_spec
from tests.mlflow_server import MlflowServer
from tests.reliability.sweep_faults import (
    Completed,
    Sweep,
    assert_kept,
    assert_no_orphans,
    automl,
    completed,
    no_traceback,
    send,
    summary,
    trial_worker,
)

pytestmark = pytest.mark.slow

TRIALS = ["--trials", "3", "--max-epochs", "2"]


@pytest.fixture(scope="module")
def spec(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faults")
    return write_spec(folder / "spec.yaml", tiny_spec(synthetic_data, folder / "unused"))


def midway(spec: Path, tmp_path: Path, *extra: str) -> tuple[Sweep, dict[int, Completed]]:
    """A sweep of 3 trials with trial 0 completed and trial 1 running, and what it has completed."""
    sweep = Sweep.start(spec, tmp_path / "sweep", *TRIALS, *(extra or ("--no-track",)))
    sweep.wait_for_trial_running(1)
    return sweep, completed(sweep.folder)


def counted(folder: Path) -> list[dict]:
    return [t for t in summary(folder)["trials"] if not t.get("requeued")]


def resume(folder: Path, *extra: str) -> None:
    resumed = automl("run", "--resume", str(folder), *extra)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    no_traceback(resumed.stdout, resumed.stderr)
    assert summary(folder)["status"] == "FINISHED"
    assert [t["state"] for t in counted(folder)] == ["COMPLETE"] * 3


def test_kill_9_of_the_orchestrator_mid_trial_then_resume(spec: Path, tmp_path: Path) -> None:
    sweep, before = midway(spec, tmp_path)
    sweep.signal(signal.SIGKILL)
    sweep.wait()
    assert_no_orphans(sweep.folder)  # the running trial got SIGTERM from the kernel and ended
    assert summary(sweep.folder)["status"] == "RUNNING"  # nobody could write otherwise
    resume(sweep.folder)
    assert_kept(before, sweep.folder)
    assert_no_orphans(sweep.folder)


def test_kill_9_of_a_trials_training_process_is_one_failed_trial(spec: Path, tmp_path: Path) -> None:
    sweep, before = midway(spec, tmp_path)
    sweep.wait_for("trial 1's training process", lambda: trial_worker(sweep.folder, 1) is not None)
    worker = trial_worker(sweep.folder, 1)
    assert worker is not None
    send(worker, signal.SIGKILL)
    assert sweep.wait() == 0, sweep.output()[-3000:]
    no_traceback(sweep.output())
    states = {t["number"]: t["state"] for t in counted(sweep.folder)}
    assert states == {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE"}, states
    killed = next(t for t in counted(sweep.folder) if t["number"] == 1)
    # "killed" where the kernel's OOM-kill counter is readable and did not move, else "oom" (the
    # usual cause of a SIGKILL nobody asked for); either way the reason names the signal
    assert killed["failure_class"] in ("killed", "oom") and "SIGKILL" in killed["error"], killed
    assert summary(sweep.folder)["status"] == "FINISHED"
    assert_kept(before, sweep.folder)
    assert_no_orphans(sweep.folder)


def test_a_torn_journal_and_a_torn_summary_then_resume_with_rebuild(spec: Path, tmp_path: Path) -> None:
    sweep, before = midway(spec, tmp_path)
    sweep.signal(signal.SIGKILL)
    sweep.wait()
    assert_no_orphans(sweep.folder)
    journal, summary_file = sweep.folder / "optuna.journal", sweep.folder / "summary.json"
    journal.write_bytes(journal.read_bytes()[:-7])  # a crash mid-write: the last record is cut short
    summary_file.write_bytes(summary_file.read_bytes()[: summary_file.stat().st_size // 2])
    refused = automl("run", "--resume", str(sweep.folder))
    assert refused.returncode == 2 and "--rebuild-study" in refused.stderr, refused.stderr[-2000:]
    no_traceback(refused.stdout, refused.stderr)
    resume(sweep.folder, "--rebuild-study")
    assert_kept(before, sweep.folder)
    assert_no_orphans(sweep.folder)


def test_the_tracking_server_dying_mid_sweep(spec: Path, tmp_path: Path) -> None:
    server = MlflowServer(tmp_path)
    server.start()
    try:
        sweep, before = midway(spec, tmp_path, "--tracking-uri", server.url)
        server.kill()
        code = sweep.wait()
    finally:
        server.stop()
    output = sweep.output()
    assert code == 0, output[-3000:]
    no_traceback(output)
    assert "MLflow tracking" in output and "automl sync" in output  # one warning naming the way back
    assert summary(sweep.folder)["status"] == "FINISHED"
    assert [t["state"] for t in counted(sweep.folder)] == ["COMPLETE"] * 3
    assert_kept(before, sweep.folder)
    assert_no_orphans(sweep.folder)


def test_ctrl_c_stops_the_sweep_and_leaves_no_process(spec: Path, tmp_path: Path) -> None:
    sweep, before = midway(spec, tmp_path)
    sweep.signal(signal.SIGINT)
    assert sweep.wait(seconds=120) == 130, sweep.output()[-3000:]
    no_traceback(sweep.output())
    assert summary(sweep.folder)["status"] == "STOPPED"
    assert_no_orphans(sweep.folder, seconds=5)  # the sweep waited for its trials before exiting
    resume(sweep.folder)
    assert_kept(before, sweep.folder)
    assert_no_orphans(sweep.folder)


def test_every_trial_failing_is_a_failed_sweep_not_a_crash(spec: Path, tmp_path: Path) -> None:
    # batch 64 on a 16-image train set: every trial fails with a data error
    sweep = Sweep.start(
        spec,
        tmp_path / "sweep",
        *TRIALS,
        "--no-track",
        *["--setting", "automl_hyperparameters=[dataset.batch_size]", "--param", "dataset.batch_size=64,128"],
    )
    assert sweep.wait() == 1, sweep.output()[-3000:]
    output = sweep.output()
    no_traceback(output)
    data = summary(sweep.folder)
    assert data["status"] == "FAILED" and data["best"] is None
    assert [(t["state"], t["failure_class"]) for t in data["trials"]] == [("FAIL", "data_error")] * 3
    assert "all 3 trials failed" in output
    assert_no_orphans(sweep.folder)
