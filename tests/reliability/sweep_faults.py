"""The harness of the fault-injection suite (test_faults.py): real sweeps, the process table, and
the three things every case asserts (no completed trial lost, none run again, no process left)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PROC = Path("/proc")


def automl(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def sweep_command(spec: Path, folder: Path, *extra: str) -> list[str]:
    """One trial at a time, seeded random search, no pipeline (the faults here are the search's)."""
    return [
        *[sys.executable, "-m", "automl.cli", "run", "-e", str(spec)],
        *["--results-dir", str(folder.parent), "--name", folder.name, "--no-pipeline"],
        *["--concurrency", "1", "--seed", "5", "--algorithm", "random", *extra],
    ]


@dataclass
class Sweep:
    """A running `automl run` (the orchestrator) and its folder; its output goes to folder.log."""

    folder: Path
    process: subprocess.Popen[bytes]

    log: Path

    @classmethod
    def start(cls, spec: Path, folder: Path, *extra: str, log: Path | None = None) -> Sweep:
        """Start ``automl run``; its output goes to ``log`` (default: <folder>.log beside the folder)."""
        log = log or folder.parent / f"{folder.name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(sweep_command(spec, folder, *extra), stdout=out, stderr=out, env=ENV)
        return cls(folder, process, log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, ready: Callable[[], bool], seconds: float = 400) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if ready():
                return
            if self.process.poll() is not None:
                pytest.fail(
                    f"the sweep ended (exit {self.process.returncode}) before {what}:\n{self.output()[-3000:]}"
                )
            time.sleep(0.3)
        self.stop()
        pytest.fail(f"{what} did not happen within {seconds:.0f} s:\n{self.output()[-3000:]}")

    def wait_for_trial_running(self, number: int) -> None:
        """Trial ``number`` has started training (its status.json has an epoch line or its process is up)
        and every trial before it is finished."""
        self.wait_for(
            f"trial {number} running after {number} finished trial(s)",
            lambda: (
                len(finished_trials(self.folder)) >= number and bool(trial_processes(self.folder, number))
            ),
        )

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, seconds: float = 600) -> int:
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the sweep did not end within {seconds:.0f} s:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


# ---- the process table ---------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    stat = _read(PROC / str(pid) / "stat").decode(errors="replace")
    return bool(stat) and stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def sweep_processes(folder: Path) -> dict[int, str]:
    """Live processes (not zombies) whose command line names the sweep folder: the trials' wrappers,
    torchrun, its workers and their DataLoader forks; pid -> command line."""
    needle = str(folder.resolve()).encode()
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        cmdline = _read(entry / "cmdline")
        if needle in cmdline and _alive(int(entry.name)):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def trial_processes(folder: Path, number: int) -> dict[int, str]:
    trial = f"/trials/{number:04d}/"
    return {pid: cmd for pid, cmd in sweep_processes(folder).items() if trial in cmd}


def trial_worker(folder: Path, number: int) -> int | None:
    """The training process of trial ``number`` once it is up: torchrun's worker (LOCAL_RANK in its
    environment) for a multi-process trial, else the trial's own `rtdetr` process (the one whose
    parent is the orchestrator); never a DataLoader fork below it."""
    members = trial_processes(folder, number)

    def is_worker(pid: int) -> bool:
        return b"\0LOCAL_RANK=" in b"\0" + _read(PROC / str(pid) / "environ")

    def parent(pid: int) -> int:
        stat = _read(PROC / str(pid) / "stat").decode(errors="replace")
        return int(stat.rsplit(")", 1)[-1].split()[1]) if stat else 0

    workers = [pid for pid in members if is_worker(pid) and not is_worker(parent(pid))]
    if not workers:
        workers = [pid for pid in members if parent(pid) not in members]
    assert len(workers) <= 1, f"more than one training process of trial {number}: {workers}: {members}"
    return workers[0] if workers else None


def assert_no_orphans(folder: Path, seconds: float = 30) -> None:
    """Within ``seconds``, no process of the sweep is left (every trial process has ended)."""
    deadline = time.time() + seconds
    while (left := sweep_processes(folder)) and time.time() < deadline:
        time.sleep(0.2)
    assert not left, f"processes of the sweep left behind: {left}"


# ---- completed trials ----------------------------------------------------------------------------


def summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text())


def finished_trials(folder: Path) -> list[dict[str, Any]]:
    try:
        trials = summary(folder)["trials"]
    except (OSError, ValueError, KeyError):
        return []
    return [t for t in trials if t["state"] in ("COMPLETE", "PRUNED", "FAIL")]


@dataclass(frozen=True)
class Completed:
    """A completed trial as the sweep recorded it, and its training's status.json, byte for byte: a
    trial run again appends to it."""

    value: float
    checkpoint: str
    status: bytes


def completed(folder: Path) -> dict[int, Completed]:
    found = {}
    for trial in finished_trials(folder):
        if trial["state"] == "COMPLETE" and not trial.get("requeued"):
            status = (Path(trial["folder"]) / "train" / "status.json").read_bytes()
            found[trial["number"]] = Completed(trial["value"], trial["checkpoint"], status)
    return found


def assert_kept(before: dict[int, Completed], folder: Path) -> None:
    """Every trial completed before the fault is still completed, with the same value and checkpoint,
    and was not run again (its status.json is unchanged)."""
    assert before, "the fault came before any trial completed: the case proves nothing"
    after = completed(folder)
    lost = sorted(set(before) - set(after))
    assert not lost, f"completed trials lost: {lost}"
    for number, trial in before.items():
        again = after[number]
        assert (again.value, again.checkpoint) == (trial.value, trial.checkpoint), number
        assert again.status == trial.status, f"trial {number} ran again"
        assert Path(trial.checkpoint).is_file()


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback (most recent call last)" not in text, text[-3000:]


def send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pytest.fail(f"process {pid} was gone before {signal.Signals(sig).name} reached it")
