"""TAO's ``status.json``: one JSON object per line, appended, written by rank 0 only.

Line keys: ``date``, ``time``, ``status`` (STARTED|RUNNING|SUCCESS|FAILURE|SKIPPED), ``verbosity``,
``message``, and on epoch lines ``epoch``, ``max_epoch``, ``time_per_epoch``, ``eta`` and ``kpi``
(values are strings, as TAO writes them). Readers (the AutoML launcher) tail this file.

A training folder (``keep_finished=True``: train, distill) keeps a finished run apart. Its status.json
holds a *finished* run when its last line is SUCCESS. A new run there:

- that fails before it starts (spec, data checks, model, resume file: anything before its STARTED
  line) writes nothing: the finished file stays byte for byte as it was, a note goes to stderr and
  the caller's error still reaches stderr with a non-zero exit;
- that starts renames the finished file ``status.run<N>.json`` (N: one more than the highest
  ``status.run*.json`` already there) and begins a fresh status.json whose first line is its
  STARTED line with ``"run": N + 1``, ``"previous_status": "status.run<N>.json"`` and the same in
  its message; ``on_new_file(N)`` is then called (the session moves experiment.yaml aside too).

A status.json that does not end with SUCCESS (an interrupted run: FAILURE after SIGTERM, a RUNNING
last line after SIGKILL, a failed start) is appended to, FAILURE lines included, so a resumed run
continues its file and the AutoML launcher reads its earlier epochs there. Other actions (evaluate,
export, ...) always append: the AutoML pipeline reads a step's lines from the file's earlier end.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "FAILURE",
    "RUNNING",
    "SKIPPED",
    "STARTED",
    "SUCCESS",
    "StatusLogger",
    "archived_status_files",
    "hms",
    "read_status",
]

STARTED, RUNNING, SUCCESS, FAILURE, SKIPPED = "STARTED", "RUNNING", "SUCCESS", "FAILURE", "SKIPPED"
_ARCHIVED = re.compile(r"^status\.run(\d+)\.json$")


def hms(seconds: float) -> str:
    """``3725`` -> ``"1:02:05"`` (status.json's ``time_per_epoch`` and ``eta``)."""
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StatusLogger:
    """Appends TAO status lines to ``<folder>/status.json``; a no-op on ranks other than 0.

    ``keep_finished``: a training folder, where a finished run's file is kept apart (module doc).
    """

    def __init__(self, folder: str | Path, *, enabled: bool = True, keep_finished: bool = False):
        self.path = Path(folder) / "status.json"
        self.enabled = enabled
        self.on_new_file: Callable[[int], None] | None = None
        self._appending = not keep_finished  # True once this run owns the file
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def holds_finished_run(self) -> bool:
        """True while this run has not started and the folder's status.json ends with SUCCESS."""
        if self._appending or not self.enabled:
            return False
        lines = read_status(self.path)
        return bool(lines) and lines[-1].get("status") == SUCCESS

    def _start_fresh_file(self, line: dict[str, Any]) -> None:
        """Move the finished run's file aside and mark ``line`` (the fresh file's first) with the run."""
        number = max([n for n, _ in archived_status_files(self.path.parent)] or [0]) + 1
        archive = self.path.with_name(f"status.run{number}.json")
        os.replace(self.path, archive)
        line["message"] = (
            f"{line.get('message', '').rstrip('.')} (run {number + 1} in this folder; run {number} "
            f"finished and its status lines are in {archive.name})."
        ).lstrip()
        line["run"] = number + 1
        line["previous_status"] = archive.name
        if self.on_new_file is not None:
            self.on_new_file(number)

    def write(self, status: str, message: str = "", **fields: Any) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        line: dict[str, Any] = {
            "date": now.strftime("%-m/%-d/%Y"),
            "time": now.strftime("%-H:%M:%S"),
            "status": status,
            "verbosity": "INFO",
        }
        if message:
            line["message"] = message
        if "kpi" in fields and isinstance(fields["kpi"], dict):
            fields["kpi"] = {k: str(v) for k, v in fields["kpi"].items()}
        line.update(fields)
        if not self.enabled:
            return line
        if self.holds_finished_run():
            if status == FAILURE:  # failed before it started: the finished run's file is left alone
                print(
                    f"note: {self.path} holds a finished run and was left as it was; this run failed "
                    f"before it started",
                    file=sys.stderr,
                    flush=True,
                )
                return line
            self._start_fresh_file(line)
        self._appending = True
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return line

    def epoch(
        self, epoch: int, max_epoch: int, seconds: float, kpi: dict[str, Any], message: str = "", **extra: Any
    ) -> dict[str, Any]:
        remaining = max(0, max_epoch - epoch) * seconds
        return self.write(
            RUNNING,
            message or f"Epoch {epoch} finished.",
            epoch=epoch,
            max_epoch=max_epoch,
            time_per_epoch=hms(seconds),
            eta=hms(remaining),
            kpi=kpi,
            **extra,
        )


def read_status(path: str | Path) -> list[dict[str, Any]]:
    """Every complete line of a status.json (a half-written last line is ignored)."""
    lines: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return lines
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def archived_status_files(folder: str | Path) -> list[tuple[int, Path]]:
    """A training folder's finished runs' status files (``status.run<N>.json``), oldest first."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    found = [(int(m.group(1)), p) for p in entries if (m := _ARCHIVED.match(p.name)) and p.is_file()]
    return sorted(found)
