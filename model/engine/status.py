"""TAO's ``status.json``: one JSON object per line, appended, written by rank 0 only.

Line keys: ``date``, ``time``, ``status`` (STARTED|RUNNING|SUCCESS|FAILURE|SKIPPED), ``verbosity``,
``message``, and on epoch lines ``epoch``, ``max_epoch``, ``time_per_epoch``, ``eta`` and ``kpi``
(values are strings, as TAO writes them). Readers (the AutoML launcher) tail this file.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["FAILURE", "RUNNING", "SKIPPED", "STARTED", "SUCCESS", "StatusLogger", "read_status"]

STARTED, RUNNING, SUCCESS, FAILURE, SKIPPED = "STARTED", "RUNNING", "SUCCESS", "FAILURE", "SKIPPED"


def _hms(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StatusLogger:
    """Appends TAO status lines to ``<folder>/status.json``; a no-op on ranks other than 0."""

    def __init__(self, folder: str | Path, *, enabled: bool = True):
        self.path = Path(folder) / "status.json"
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

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
        if self.enabled:
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
            time_per_epoch=_hms(seconds),
            eta=_hms(remaining),
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
