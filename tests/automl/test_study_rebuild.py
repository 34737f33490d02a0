"""A damaged Optuna journal or summary.json (issue 19): a torn last record is skipped with a warning and
the resume works; a damaged record in the middle is refused with the file and the line; the rebuild
(`automl run --resume SWEEP --rebuild-study`) makes the study and summary.json again from the trial
folders, so no finished trial is lost or run again and an interrupted one is re-queued as a resume
does. Real Optuna journals on a sweep folder made without training (tests/automl/damaged_sweep.py);
the last test is the issue's reproduction with real trials: SIGKILL, the journal cut to 60 %, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import yaml

from automl.backends.base import SweepPlan
from automl.backends.optuna.backend import OptunaBackend
from automl.commands.sweep_inputs import make_space
from automl.errors import SweepFolderError
from automl.results.summary import SweepSummary, read_summary
from automl.settings.tao_settings import parse_settings
from automl.sweep.loop import SweepLoop
from tests.automl.damaged_sweep import make_killed_sweep, study_trials
from tests.conftest import tiny_spec, write_spec

COMPLETE, PRUNED, FAIL, WAITING = (
    optuna.trial.TrialState[s] for s in ("COMPLETE", "PRUNED", "FAIL", "WAITING")
)


@pytest.fixture
def sweep(tmp_path: Path, root: Path) -> tuple[Path, dict[str, Any]]:
    template = yaml.safe_load((root / "references" / "spec_template_train.yaml").read_text())
    folder = tmp_path / "sweep"
    make_killed_sweep(folder, template, root / "schemas" / "train.schema.json")
    return folder, read_summary(folder)


def resume_backend(folder: Path) -> tuple[OptunaBackend, SweepSummary]:
    """What `automl run --resume` does up to the first trial: the backend opened on resume."""
    data = read_summary(folder)
    config = data["config"]
    settings = parse_settings(config["setting_pairs"])
    space = make_space(Path(config["schema"]), config["base_spec"], settings, config["param_ranges"])
    summary = SweepSummary(folder, data)
    plan = SweepPlan(
        folder, config["base_spec"], space, settings, data["max_epochs"], 1, study=config["study"]
    )
    display = SimpleNamespace(
        trial_finished=lambda *a: None, trial_started=lambda *a, **k: None, epoch=lambda *a: None
    )
    backend = OptunaBackend(plan)
    backend.open(SweepLoop(plan, summary, display), resume=True)  # type: ignore[arg-type]
    return backend, summary


def cut(path: Path, keep: float | int) -> bytes:
    data = path.read_bytes()
    kept = data[: int(len(data) * keep)] if isinstance(keep, float) else data[:keep]
    path.write_bytes(kept)
    return kept


def damage_line(path: Path, number: int) -> bytes:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = lines[number - 1][:40] + b"\n"
    path.write_bytes(b"".join(lines))
    return b"".join(lines)


def assert_resumed_without_loss(folder: Path, original: dict[str, Any]) -> None:
    """Trials 0 and 1 keep their state, parameters, value and epochs; trial 2 (interrupted) is failed
    and re-queued with its parameters and folder, and nothing else waits to run."""
    trials = study_trials(folder)
    by_number = {t.number: t for t in trials}
    params = {t["number"]: t["params"] for t in original["trials"]}
    assert by_number[0].state == COMPLETE and by_number[0].value == pytest.approx(0.30)
    assert by_number[0].intermediate_values == pytest.approx({0: 0.20, 1: 0.30})
    assert by_number[1].state == PRUNED and by_number[1].intermediate_values == pytest.approx({0: 0.05})
    for number in (0, 1, 2):
        assert by_number[number].params["train.optim.lr"] == pytest.approx(params[number]["train.optim.lr"])
    assert by_number[2].state == FAIL
    waiting = [t for t in trials if t.state == WAITING]
    assert len(waiting) == 1 and waiting[0].number == 3
    assert waiting[0].user_attrs["resume_folder"] == str(folder / "trials" / "0002")
    assert waiting[0].system_attrs["fixed_params"]["train.optim.lr"] == pytest.approx(
        params[2]["train.optim.lr"]
    )
    records = {t["number"]: t for t in read_summary(folder)["trials"]}
    assert records[0]["state"] == "COMPLETE" and records[1]["state"] == "PRUNED"
    assert records[2]["state"] == "FAIL" and records[2]["requeued"] is True


def test_a_torn_last_record_is_skipped_with_a_warning(sweep, capsys) -> None:
    folder, original = sweep
    journal = folder / "optuna.journal"
    whole = journal.read_bytes()
    kept = cut(journal, len(whole) - 25)  # a crash in the middle of writing the last record
    resume_backend(folder)
    out = capsys.readouterr().out
    assert "warning:" in out and str(journal) in out and "torn" in out
    assert_resumed_without_loss(folder, original)
    # the torn bytes are kept beside the journal, not thrown away
    (torn,) = folder.glob("optuna.journal.torn-*")
    assert kept.endswith(torn.read_bytes()) and journal.read_bytes().startswith(
        kept[: -len(torn.read_bytes())]
    )
    assert all(json.loads(line) for line in journal.read_bytes().splitlines())


def test_a_finished_trial_that_summary_json_still_shows_running_gets_the_studys_record(sweep) -> None:
    """The orchestrator died (or its disk filled) after the study's tell and before summary.json was
    rewritten: the resume takes the study's record, so the trial is neither lost nor run again."""
    folder, original = sweep
    data = read_summary(folder)
    stale = {**data["trials"][0], "state": "RUNNING", "value": None, "best_epoch": None}
    data["trials"][0] = stale
    (folder / "summary.json").write_text(json.dumps(data))
    resume_backend(folder)
    assert_resumed_without_loss(folder, original)
    record = next(t for t in read_summary(folder)["trials"] if t["number"] == 0)
    assert record["state"] == "COMPLETE" and record["value"] == pytest.approx(0.30)
    assert not record.get("requeued")


def test_a_journal_cut_to_60_percent_is_rebuilt_from_the_trial_records(sweep, capsys) -> None:
    """The journal then lacks trials that summary.json records: the resume rebuilds the study from
    the records instead of running trial numbers again, and keeps the cut journal."""
    folder, original = sweep
    kept = cut(folder / "optuna.journal", 0.6)
    resume_backend(folder)
    out = capsys.readouterr().out
    assert "torn" in out and "rebuilt" in out and "summary.json" in out
    assert_resumed_without_loss(folder, original)
    (damaged,) = folder.glob("optuna.journal.damaged-*")
    (torn,) = folder.glob("optuna.journal.torn-*")
    assert damaged.read_bytes() + torn.read_bytes() == kept


def test_a_damaged_middle_record_names_the_file_the_line_and_the_rebuild(sweep) -> None:
    from automl.backends.optuna.journal_file import check_journal

    folder, _ = sweep
    journal = folder / "optuna.journal"
    damaged = damage_line(journal, 3)
    with pytest.raises(SweepFolderError) as refused:
        check_journal(journal, folder)
    message = str(refused.value)
    assert str(journal) in message and "line 3" in message
    assert f"automl run --resume {folder} --rebuild-study" in message
    assert journal.read_bytes() == damaged  # refused, untouched


def test_the_rebuild_after_a_damaged_middle_record_keeps_every_finished_trial(sweep) -> None:
    from automl.commands.rebuild import rebuild_sweep

    folder, original = sweep
    before = {t.number: t for t in study_trials(folder)}
    damaged = damage_line(folder / "optuna.journal", 3)
    rebuild_sweep(folder)
    (kept,) = folder.glob("optuna.journal.damaged-*")
    assert kept.read_bytes() == damaged
    data = read_summary(folder)
    assert data["config"] == original["config"] and data["best"]["trial"] == 0
    rebuilt = {t.number: t for t in study_trials(folder)}
    for number, trial in before.items():  # the space's distributions, the parameters, the values
        assert rebuilt[number].distributions == trial.distributions
        assert rebuilt[number].params == pytest.approx(trial.params)
        assert (rebuilt[number].state, rebuilt[number].value) == (trial.state, trial.value)
    resume_backend(folder)
    assert_resumed_without_loss(folder, original)


def test_the_rebuild_after_a_corrupt_summary_recovers_the_sweep_from_the_study_and_the_folders(sweep) -> None:
    from automl.commands.rebuild import rebuild_sweep

    folder, original = sweep
    summary = folder / "summary.json"
    corrupt = cut(summary, 0.5)
    journal = (folder / "optuna.journal").read_bytes()
    rebuild_sweep(folder)
    (kept,) = folder.glob("summary.json.damaged-*")
    assert kept.read_bytes() == corrupt
    data = read_summary(folder)
    for key in (
        "name",
        "action",
        "backend",
        "algorithm",
        "settings",
        "config",
        "space",
        "max_epochs",
        "metric",
    ):
        assert data[key] == original[key], key
    assert data["policy"]["decision"] == "auto" and data["status"] == "STOPPED"
    trials = {t["number"]: t for t in data["trials"]}
    for number, before in ((t["number"], t) for t in original["trials"]):
        for key in ("state", "value", "best_epoch", "last_epoch", "checkpoint", "folder"):
            assert trials[number][key] == before[key], (number, key)
        assert trials[number]["params"] == pytest.approx(before["params"])
    assert data["best"]["trial"] == 0 and data["best"]["value"] == pytest.approx(0.30)
    assert (folder / "optuna.journal").read_bytes() == journal  # the study was intact: kept as it is
    resume_backend(folder)
    assert_resumed_without_loss(folder, original)


def test_without_records_in_the_study_the_trials_come_back_from_their_folders(sweep) -> None:
    """A study that holds no trial records (written before they were kept there): each trial comes back
    from its folder (spec.yaml, status.json) with the study's state; a prune is known only there."""
    from automl.commands.rebuild import rebuild_sweep

    folder, original = sweep
    journal = folder / "optuna.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    journal.write_bytes(
        b"".join(
            line for line, r in zip(lines, records) if not (r["op_code"] == 8 and "record" in r["user_attr"])
        )
    )
    cut(folder / "summary.json", 0.5)
    rebuild_sweep(folder)
    trials = {t["number"]: t for t in read_summary(folder)["trials"]}
    for before in original["trials"]:
        for key in ("state", "value", "best_epoch", "last_epoch", "checkpoint", "folder", "error"):
            assert trials[before["number"]][key] == before[key], (before["number"], key)
        assert trials[before["number"]]["params"] == pytest.approx(before["params"])


def test_the_rebuild_refuses_when_neither_summary_nor_study_can_be_read(sweep) -> None:
    from automl.commands.rebuild import rebuild_sweep

    folder, _ = sweep
    cut(folder / "summary.json", 0.5)
    (folder / "optuna.journal").unlink()
    with pytest.raises(SweepFolderError) as refused:
        rebuild_sweep(folder)
    message = str(refused.value)
    assert "summary.json" in message and "optuna.journal" in message and "trials/" in message


@pytest.mark.parametrize(
    ("last", "state", "failure_class"),
    [
        ({"status": "SUCCESS", "message": "Train finished successfully."}, "COMPLETE", None),
        (
            {"status": "FAILURE", "message": "dataset.train_data_sources[0].json_file: no such file"},
            "FAIL",
            "data_error",
        ),
        ({"status": "FAILURE", "message": "interrupted by SIGTERM at epoch 1 step 8"}, "RUNNING", None),
        (None, "RUNNING", None),
    ],
)
def test_a_trial_folder_tells_how_its_trial_ended(tmp_path: Path, last, state, failure_class) -> None:
    from automl.results.objective import Objective
    from automl.results.trial_folders import folder_record

    folder = tmp_path / "0007"
    (folder / "train").mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump({"train": {"optim": {"lr": 0.0003}}}))
    epoch = {"status": "RUNNING", "epoch": 0, "kpi": {"val_mAP50": "0.4"}}
    lines = [epoch] + ([last] if last else [])
    (folder / "train" / "status.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    record = folder_record(folder, 7, ["train.optim.lr", "model.backbone"], Objective())
    assert record is not None and record.number == 7 and record.params == {"train.optim.lr": 0.0003}
    assert (record.state.value, record.failure_class) == (state, failure_class)
    assert record.value == 0.4 and record.best_epoch == 0 and record.last_epoch == 0


def test_a_trial_without_a_result_is_a_failure_as_the_loop_records_it(tmp_path: Path) -> None:
    from automl.results.objective import Objective
    from automl.results.trial_folders import folder_record

    folder = tmp_path / "0001"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "status.json").write_text(json.dumps({"status": "SUCCESS", "message": "done"}) + "\n")
    record = folder_record(folder, 1, [], Objective())
    assert record is not None and record.state.value == "FAIL" and record.failure_class == "no_metric"
    assert folder_record(tmp_path / "0002", 2, [], Objective()) is None


@pytest.mark.slow
def test_a_killed_sweep_with_a_cut_journal_resumes_and_rebuilds(synthetic_data: Path, tmp_path: Path) -> None:
    """The issue's reproduction: SIGKILL mid-trial, the journal cut to 60 %, `--resume` works; then a
    damaged middle record and a truncated summary.json are each rebuilt without running a trial again."""
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused"))
    folder = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "automl.cli", "run", "-e", str(spec), "--results-dir", str(tmp_path)]
    cmd += ["--name", "killed", "--no-track", "--no-pipeline", "--trials", "2", "--max-epochs", "1"]
    driver = subprocess.Popen(
        [*cmd, "--seed", "5", "--algorithm", "random"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.time() + 400
        while time.time() < deadline and not (folder / "trials" / "0001" / "spec.yaml").is_file():
            time.sleep(0.3)
        assert (folder / "trials" / "0001").is_dir(), "the second trial never started"
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    time.sleep(3)  # the orphaned trial gets SIGTERM (parent-death signal) and stops
    cut(folder / "optuna.journal", 0.6)

    def automl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "automl.cli", *args], capture_output=True, text=True, timeout=600, env=env
        )

    resumed = automl("run", "--resume", str(folder))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "torn" in resumed.stdout and "rebuilt" in resumed.stdout and "Traceback" not in resumed.stderr
    data = read_summary(folder)
    counted = [t for t in data["trials"] if not t.get("requeued")]
    assert (
        data["status"] == "FINISHED" and len(counted) == 2 and {t["state"] for t in counted} == {"COMPLETE"}
    )
    assert [t["number"] for t in data["trials"] if t.get("requeued")] == [1]  # trial 0 was not run again
    finished = json.dumps(data["trials"], sort_keys=True)

    damage_line(folder / "optuna.journal", 3)
    refused = automl("run", "--resume", str(folder))
    assert refused.returncode == 2 and "line 3" in refused.stderr and "--rebuild-study" in refused.stderr
    rebuilt = automl("run", "--resume", str(folder), "--rebuild-study")
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    assert json.dumps(read_summary(folder)["trials"], sort_keys=True) == finished  # nothing ran again

    cut(folder / "summary.json", 0.5)
    status = automl("status", str(folder))
    assert status.returncode == 2 and "--rebuild-study" in status.stderr
    rebuilt = automl("run", "--resume", str(folder), "--rebuild-study")
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    data = read_summary(folder)
    assert data["status"] == "FINISHED" and json.dumps(data["trials"], sort_keys=True) == finished
    assert automl("status", str(folder)).returncode == 0
