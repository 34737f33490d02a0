"""The launcher against real ``rtdetr train`` processes on the tiny spec (a few seconds per epoch).

Tests that train for more than a few seconds are marked slow.
"""

from __future__ import annotations

import _thread
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from automl.launch.launcher import (
    EpochReport,
    TrialInterrupted,
    run_trial,
    stop_all_trials,
    trial_environment,
)
from automl.launch.status_tail import StatusTail
from tests.conftest import tiny_spec


def trial_pids(trial_dir: Path) -> set[int]:
    """Live (non-zombie) processes whose command line names this trial's spec.yaml."""
    needle = str(trial_dir / "spec.yaml").encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None


def assert_all_gone(outcome, trial_dir: Path) -> None:
    assert outcome.pgid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(outcome.pgid, 0)
    assert trial_pids(trial_dir) == set()


def never_prune(reports: list[EpochReport]):
    def on_epoch(report: EpochReport) -> bool:
        reports.append(report)
        return False

    return on_epoch


@pytest.mark.slow
def test_a_two_epoch_trial_completes(synthetic_data, tmp_path):
    trial_dir = tmp_path / "trial_0000"
    reports: list[EpochReport] = []
    spec = tiny_spec(synthetic_data, tmp_path / "elsewhere")
    outcome = run_trial(trial_dir, spec, on_epoch=never_prune(reports), poll_interval=0.2)

    assert (outcome.state, outcome.returncode, outcome.failure_class, outcome.reason) == (
        "COMPLETE",
        0,
        None,
        None,
    )
    assert [r.epoch for r in outcome.history] == [0, 1] and outcome.history == reports
    for report in outcome.history:
        assert {"val_mAP50", "val_mAP", "val_loss", "train_loss", "lr", "seconds"} <= set(report.metrics)
        assert all(isinstance(v, float) for v in report.metrics.values())
    best = max(outcome.history, key=lambda r: r.metrics["val_mAP50"])
    assert outcome.best_value == best.metrics["val_mAP50"] and outcome.best_epoch == best.epoch
    assert outcome.best_checkpoint == str(trial_dir / "train" / f"model_epoch_{best.epoch:03d}.pth")
    assert Path(outcome.best_checkpoint).is_file()
    assert outcome.last_epoch == 1 and outcome.seconds > 0
    assert yaml.safe_load((trial_dir / "spec.yaml").read_text())["results_dir"] == str(trial_dir)
    log = Path(outcome.log_path).read_text()
    assert outcome.log_path == str(trial_dir / "trial.log") and "epoch 1/1 done" in log
    assert not (tmp_path / "elsewhere").exists()
    assert_all_gone(outcome, trial_dir)


@pytest.mark.slow
def test_prune_stops_every_process_and_the_trial_resumes(synthetic_data, tmp_path):
    trial_dir = tmp_path / "trial_0001"
    spec = tiny_spec(synthetic_data, tmp_path, train={"num_epochs": 20})
    seen: dict[str, object] = {}

    def prune_first(report: EpochReport) -> bool:
        seen["pids"] = trial_pids(trial_dir)
        seen["at"] = time.monotonic()
        return True

    outcome = run_trial(trial_dir, spec, on_epoch=prune_first, grace=20, poll_interval=0.2)
    stopped_in = time.monotonic() - seen["at"]

    assert outcome.state == "PRUNED" and outcome.failure_class is None
    assert [r.epoch for r in outcome.history] == [0] and outcome.best_epoch == 0
    assert "pruned" in outcome.reason
    assert stopped_in < 15, f"the trial took {stopped_in:.1f} s to stop"
    assert outcome.pgid in seen["pids"]
    assert_all_gone(outcome, trial_dir)
    # The trainer stopped cleanly (SIGTERM: finish the step, save, exit 143), so the trial can resume.
    last = StatusTail(trial_dir / "train" / "status.json").read()[-1]
    assert outcome.returncode == 143 and last["status"] == "FAILURE"
    assert last["message"].startswith("interrupted by SIGTERM")

    # Running the same folder again resumes from that checkpoint (here with a shorter schedule).
    reports: list[EpochReport] = []
    spec["train"]["num_epochs"] = 2
    resumed = run_trial(trial_dir, spec, on_epoch=never_prune(reports), poll_interval=0.2)
    assert resumed.state == "COMPLETE"
    assert [r.epoch for r in resumed.history] == [0, 1]  # epoch 0 from the first run
    assert [r.epoch for r in reports] == [1]  # only new validations are reported
    log = (trial_dir / "trial.log").read_text()
    assert log.count("==== ") == 2 and "Resuming from" in log


@pytest.mark.slow
def test_prune_stops_torchrun_and_its_workers_in_their_own_sessions(synthetic_data, tmp_path):
    """train.num_gpus=2 on the CPU: rtdetr -> torchrun -> 2 workers (each in a session of its own,
    as torchrun starts them) -> their DataLoader workers. Every one of them is gone after a prune."""
    trial_dir = tmp_path / "trial_ddp"
    spec = tiny_spec(synthetic_data, tmp_path, train={"num_epochs": 20, "num_gpus": 2})
    seen: dict[str, set[int]] = {}

    def prune_first(report: EpochReport) -> bool:
        seen["pids"] = trial_pids(trial_dir)
        seen["sessions"] = {_session(pid) for pid in seen["pids"]} - {None}
        return True

    outcome = run_trial(trial_dir, spec, on_epoch=prune_first, grace=20, poll_interval=0.2)
    assert outcome.state == "PRUNED" and [r.epoch for r in outcome.history] == [0]
    assert len(seen["pids"]) >= 3  # rtdetr and 2 workers (torchrun's command line names no spec.yaml)
    assert len(seen["sessions"]) == 3  # the trial's own session and one per worker
    assert_all_gone(outcome, trial_dir)


def test_bad_category_ids_fail_as_a_data_error(synthetic_data, tmp_path):
    trial_dir = tmp_path / "trial_0003"
    spec = tiny_spec(synthetic_data, tmp_path, dataset={"num_classes": 2, "eval_class_ids": [1]})
    outcome = run_trial(trial_dir, spec, on_epoch=lambda report: False, poll_interval=0.2)
    assert (outcome.state, outcome.returncode, outcome.failure_class) == ("FAIL", 1, "data_error")
    assert "annotations.json" in outcome.reason and "dataset.num_classes: 4" in outcome.reason
    assert outcome.history == [] and outcome.best_epoch is None and outcome.best_checkpoint is None
    assert_all_gone(outcome, trial_dir)


def test_a_spec_the_model_rejects_is_a_spec_error(synthetic_data, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path, train={"num_epochs": 2, "optim": {"lr": 5.0}})
    outcome = run_trial(tmp_path / "trial_0004", spec, on_epoch=lambda report: False, poll_interval=0.2)
    assert (outcome.state, outcome.returncode, outcome.failure_class) == ("FAIL", 2, "spec_error")
    assert "train.optim.lr" in outcome.reason


def test_timeout_fails_the_trial_and_ends_its_processes(synthetic_data, tmp_path):
    trial_dir = tmp_path / "trial_0005"
    spec = tiny_spec(synthetic_data, tmp_path, train={"num_epochs": 20})
    started = time.monotonic()
    outcome = run_trial(
        trial_dir, spec, on_epoch=lambda report: False, timeout=3, grace=10, poll_interval=0.2
    )
    assert (outcome.state, outcome.failure_class) == ("FAIL", "timeout")
    assert "timed out after 3 s" in outcome.reason
    assert time.monotonic() - started < 20
    assert_all_gone(outcome, trial_dir)


def test_ctrl_c_in_the_callers_thread_stops_the_trial_and_propagates(synthetic_data, tmp_path):
    trial_dir = tmp_path / "trial_0006"
    spec = tiny_spec(synthetic_data, tmp_path, train={"num_epochs": 20})
    timer = threading.Timer(2.0, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_trial(trial_dir, spec, on_epoch=lambda report: False, grace=10, poll_interval=0.2)
    finally:
        timer.cancel()
    assert trial_pids(trial_dir) == set()


@pytest.mark.slow
def test_concurrent_trials_and_stop_all(synthetic_data, tmp_path):
    """Two trials in threads: one fails on its data by itself, the other is stopped by stop_all_trials."""
    results: dict[str, object] = {}

    def run(name: str, spec: dict) -> None:
        try:
            results[name] = run_trial(tmp_path / name, spec, on_epoch=lambda report: False, poll_interval=0.2)
        except TrialInterrupted as exc:
            results[name] = exc

    bad = tiny_spec(synthetic_data, tmp_path, dataset={"num_classes": 2, "eval_class_ids": [1]})
    long = tiny_spec(synthetic_data, tmp_path, train={"num_epochs": 20})
    threads = [
        threading.Thread(target=run, args=("bad", bad)),
        threading.Thread(target=run, args=("long", long)),
    ]
    for thread in threads:
        thread.start()
    threads[0].join(timeout=120)
    assert results["bad"].failure_class == "data_error"
    assert stop_all_trials() == 1
    threads[1].join(timeout=60)
    assert isinstance(results["long"], TrialInterrupted)
    assert "resumes" in str(results["long"])
    assert trial_pids(tmp_path / "long") == set()


def test_trial_environment_gives_devices_port_and_threads():
    env = trial_environment([2, 3], 29600, {"EXTRA": "1"}, running=1)
    assert env["CUDA_VISIBLE_DEVICES"] == env["TAO_VISIBLE_DEVICES"] == "2,3"
    assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["PYTHONUNBUFFERED"], env["EXTRA"]) == (
        "127.0.0.1",
        "29600",
        "1",
        "1",
    )
    cpu = trial_environment([], 29601, None, running=2)
    assert cpu["CUDA_VISIBLE_DEVICES"] == ""
    if "OMP_NUM_THREADS" not in os.environ:
        assert int(cpu["OMP_NUM_THREADS"]) >= 1
