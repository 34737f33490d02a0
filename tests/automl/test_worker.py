"""`automl worker`: several processes share one sweep through an Optuna journal file.

A first `automl run --storage FILE.journal` creates the sweep; two `automl worker` processes (real
subprocesses) join it while it runs. The trial budget is the study's: exactly `--trials` trials run
in all, each once, and `automl status`, `automl best` and the storage name the same best.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import tiny_spec, write_spec

pytestmark = pytest.mark.slow
BUDGET = 3


def automl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "automl.cli", *args]


def start(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        automl_cmd(*args), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if not t.user_attrs.get("over_budget")]


def check_shared_sweep(
    storage_arg: str, storage: object, name: str, sweep: Path, other: Path, outs: list[str]
):
    """What every view of a finished shared sweep must agree on."""
    study = optuna.load_study(study_name=name, storage=storage)
    trials = counted_trials(study)
    numbers = [t.number for t in trials]
    assert len(trials) == BUDGET and len(set(numbers)) == BUDGET, [
        (t.number, t.state) for t in study.get_trials()
    ]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    # the storage is the ledger: each trial's record, written by the process that ran it
    records = {t.number: t.user_attrs["record"] for t in trials}
    workers = {r["worker"] for r in records.values()}
    assert len(workers) >= 2, workers  # more than one process ran trials
    assert all(r.get("host") for r in records.values())
    assert all(r["state"] == t.state.name for t, r in zip(trials, records.values(), strict=True))
    folders = [r["folder"] for r in records.values()]
    assert len(set(folders)) == BUDGET and all((Path(f) / "spec.yaml").is_file() for f in folders)
    over = [t for t in study.get_trials() if t.user_attrs.get("over_budget")]
    assert all(t.state.name == "FAIL" and "record" not in t.user_attrs for t in over)  # never ran
    from automl.sweep.view import sweep_view

    for folder in (sweep, other):  # every process's folder sees every trial as the storage has it
        view = {t["number"]: t for t in sweep_view(folder)["trials"]}
        assert sorted(view) == sorted(numbers)
        for t in trials:
            shown = view[t.number]
            assert shown["state"] == t.state.name and shown["worker"] == records[t.number]["worker"]
            if t.state.name == "COMPLETE":
                assert shown["value"] == pytest.approx(t.value)
    # automl status / automl best, from the sweep folder and from the other worker's folder
    best_number = None
    for folder in (sweep, other):
        status = subprocess.run(
            automl_cmd("status", str(folder)), capture_output=True, text=True, timeout=120
        )
        assert status.returncode == 0, status.stderr
        best = json.loads(
            subprocess.run(
                automl_cmd("best", str(folder), "--json"),
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout
        )
        assert f"best: trial {best['trial']} " in status.stdout
        assert all(f" {n} " in status.stdout or f"│ {n} " in status.stdout for n in numbers), status.stdout
        best_number = best["trial"] if best_number is None else best_number
        assert best["trial"] == best_number
    scored = [t for t in trials if t.state.name == "COMPLETE"]
    top = max(t.value for t in scored)
    assert best["value"] == pytest.approx(top)
    assert study.best_value == pytest.approx(top)
    assert study.trials[best_number].value == pytest.approx(top)
    assert Path(best["checkpoint"]).is_file()
    assert sum(out.count("ran ") for out in outs) >= 1


@pytest.fixture()
def spec_file(synthetic_data: Path, tmp_path: Path) -> Path:
    return write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 1})
    )


def run_shared_sweep(spec_file: Path, tmp_path: Path, storage_arg: str, name: str) -> list[str]:
    first = start(
        *["run", "-e", str(spec_file), "--trials", str(BUDGET)],
        *["--max-epochs", "1", "--results-dir", str(tmp_path), "--name", name],
        *["--seed", "0", "--storage", storage_arg, "--no-track", "--no-pipeline"],
        *["--algorithm", "random", "--param", "train.optim.lr=1e-4:3e-3:log"],
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / name / "trials" / "0000").is_dir():  # the study exists and its first trial runs
        assert first.poll() is None, first.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the first process never started a trial"
        time.sleep(0.5)
    other = str(tmp_path / "other")  # the second worker writes its trial folders elsewhere
    workers = [
        start("worker", "--storage", storage_arg, "--study", name, cwd=tmp_path),
        start("worker", "--storage", storage_arg, "--study", name, "--results-dir", other, cwd=tmp_path),
    ]
    return [finish(first)] + [finish(w) for w in workers]


def test_two_workers_share_a_journal_sweep(spec_file, tmp_path):
    journal = tmp_path / "shared.journal"
    outs = run_shared_sweep(spec_file, tmp_path, str(journal), "shared")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    check_shared_sweep(str(journal), storage, "shared", tmp_path / "shared", tmp_path / "other", outs)
    # the worker that had its own results dir wrote its trial folders there
    other_trials = list((tmp_path / "other" / "trials").glob("*/spec.yaml"))
    own = json.loads(next((tmp_path / "other").glob("worker-*.json")).read_text())
    assert len(other_trials) == len([t for t in own["trials"] if t.get("worker") == own["worker"]])


def test_a_worker_names_a_missing_study(tmp_path):
    journal = tmp_path / "empty.journal"
    proc = subprocess.run(
        automl_cmd("worker", "--storage", str(journal), "--study", "nope"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "no study named 'nope'" in proc.stderr and "automl run --storage" in proc.stderr


def test_the_budget_holds_when_processes_race(tmp_path):
    """Four processes claim trials of a budget of 12 at the same time (`claim_trial`, what every
    process of a shared sweep does before a trial); exactly 12 run."""
    from automl.backends.optuna.shared_budget import counted

    journal = tmp_path / "race.journal"
    script = tmp_path / "claim.py"
    script.write_text(
        "import sys, optuna\n"
        "from optuna.storages import JournalStorage\n"
        "from optuna.storages.journal import JournalFileBackend\n"
        "from automl.backends.optuna.shared_budget import claim_trial\n"
        "study = optuna.load_study(study_name='race', storage=JournalStorage(JournalFileBackend(sys.argv[1])))\n"
        "ran = 0\n"
        "while (trial := claim_trial(study, 12)) is not None:\n"
        "    study.tell(trial, 1.0)\n"
        "    ran += 1\n"
        "print(ran)\n"
    )
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    optuna.create_study(study_name="race", storage=storage)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(journal)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(4)
    ]
    ran = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    study = optuna.load_study(study_name="race", storage=storage)
    assert sum(ran) == 12 and len(counted(study.get_trials())) == 12
    assert all(t.state.name == "COMPLETE" for t in counted(study.get_trials()))


def test_a_worker_refuses_a_pbt_study(tmp_path):
    """Optuna-backend PBT clones continue checkpoints in the sweep's own folder: one process runs it."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from automl.backends.optuna.study import DEFINITION_ATTR

    journal = tmp_path / "pbt.journal"
    study = optuna.create_study(study_name="pbt", storage=JournalStorage(JournalFileBackend(str(journal))))
    study.set_user_attr(DEFINITION_ATTR, {"setting_pairs": {"automl_algorithm": "pbt"}})
    proc = subprocess.run(
        automl_cmd("worker", "--storage", str(journal), "--study", "pbt"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode != 0 and "automl_algorithm=pbt" in proc.stderr
    assert "one `automl run`" in proc.stderr and "--backend ray" in proc.stderr
