"""One model action run as a process for the pipeline: ``rtdetr <action> -e spec key=value ...``.

The process is started like a trial (``TrialProcess``: a session of its own, stopped with the
orchestrator, stdout+stderr appended to a log file) and its outcome is read from the
``status.json`` lines it appends to its results folder: SUCCESS (with ``kpi``), SKIPPED (an action
that cannot run here, e.g. TensorRT without a GPU, says why and exits 0) or a failure, whose reason
comes from ``automl.launch.failures.classify`` (the FAILURE message, the CLI's ``error:`` line, the log
tail, the exit code or signal).
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.launch.failures import classify
from automl.launch.launcher import log_tail_lines, trial_environment
from automl.launch.process import TrialProcess
from automl.launch.status_tail import StatusTail, file_size
from automl.spec import rtdetr_command

__all__ = ["FAILED", "SKIPPED", "SUCCESS", "StepOutcome", "run_action"]

SUCCESS, FAILED, SKIPPED = "SUCCESS", "FAILED", "SKIPPED"
_GRACE = 10.0


@dataclass
class StepOutcome:
    """What one action process did: ``state`` SUCCESS|FAILED|SKIPPED, its message or failure reason,
    its last status line's ``kpi`` (as floats) and the rest of that line."""

    state: str
    message: str = ""
    kpi: dict[str, float] = field(default_factory=dict)
    status_line: dict[str, Any] = field(default_factory=dict)
    returncode: int | None = None
    seconds: float = 0.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _floats(kpi: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, raw in (kpi or {}).items() if isinstance(kpi, dict) else ():
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            out[str(key)] = value
    return out


def run_action(
    action: str,
    spec_path: Path,
    overrides: Sequence[str],
    status_folder: Path,
    log_path: Path,
    *,
    timeout: float | None = None,
    poll_interval: float = 0.2,
) -> StepOutcome:
    """Run ``rtdetr <action> -e spec_path overrides...`` to its end; its status.json is in
    ``status_folder``. Never leaves a process behind (Ctrl-C stops it, then propagates)."""
    status_path = Path(status_folder) / "status.json"
    tail = StatusTail(status_path, offset=file_size(status_path))  # only this run's lines
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_start = file_size(log_path)
    started = time.monotonic()
    process = TrialProcess(
        [*rtdetr_command(), action, "-e", str(spec_path), *overrides],
        env=trial_environment(None, _free_port(), None, 1),
        log_path=log_path,
    )
    timed_out = False
    try:
        while not process.leader_exited():
            if timeout is not None and time.monotonic() - started > timeout:
                timed_out = True
                process.stop(_GRACE)
                break
            time.sleep(poll_interval)
        returncode = process.reap()
    except BaseException:
        process.stop(_GRACE)
        raise
    seconds = round(time.monotonic() - started, 3)
    lines = tail.read()
    last = next((line for line in reversed(lines) if line.get("status") != "RUNNING"), None)
    kpi = _floats((last or {}).get("kpi"))
    extra = {k: v for k, v in (last or {}).items() if k not in ("date", "time", "verbosity", "kpi")}
    message = str((last or {}).get("message") or "")
    if timed_out:
        return StepOutcome(FAILED, f"timed out after {timeout:g} s", kpi, extra, returncode, seconds)
    status = (last or {}).get("status")
    if returncode == 0 and status == "SKIPPED":
        return StepOutcome(SKIPPED, message or "the action skipped itself", kpi, extra, returncode, seconds)
    failure = classify(returncode, last, log_tail_lines(log_path, log_start))
    if failure is None:
        return StepOutcome(SUCCESS, message, kpi, extra, returncode, seconds)
    reason = failure.reason.replace("the trial's spec was rejected", "the spec was rejected")
    if failure.kind == "exit_code" and status == "FAILURE" and message:
        reason = message  # the action's own words (its FAILURE line) say it best
    return StepOutcome(FAILED, reason, kpi, extra, returncode, seconds)
