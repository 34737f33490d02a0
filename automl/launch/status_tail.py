"""Reading a trial's ``status.json`` while it is being written.

TAO's format: one JSON object per line, appended by rank 0 (``STARTED``, per-epoch ``RUNNING`` lines
with ``epoch``, ``time_per_epoch`` "H:MM:SS" and ``kpi`` values as strings, then ``SUCCESS`` or
``FAILURE``). ``StatusTail`` reads only what was appended since its last call, keeps a half-written
last line for the next call and waits quietly for a file that does not exist yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EpochReport",
    "StatusTail",
    "epoch_report",
    "file_size",
    "final_report",
    "parse_seconds",
    "trial_status_file",
]


@dataclass
class EpochReport:
    """One validation of a trial: the kpi values as floats, plus ``seconds`` (time_per_epoch)."""

    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)


class StatusTail:
    """Incremental reader of one status.json, from byte ``offset`` on."""

    def __init__(self, path: str | Path, offset: int = 0):
        self.path = Path(path)
        self.offset = offset
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        """The complete lines appended since the last call (unparsable lines are skipped)."""
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, 2)
                if size < self.offset:  # the file was replaced: start over
                    self.offset, self._partial = 0, b""
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        lines: list[dict[str, Any]] = []
        for raw in complete:
            try:
                line = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(line, dict):
                lines.append(line)
        return lines


def file_size(path: str | Path) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0


def parse_seconds(value: Any) -> float | None:
    """``"1:02:03"`` (TAO's time_per_epoch) or a number -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parts = [float(p) for p in value.strip().split(":")]
    except ValueError:
        return None
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def epoch_report(line: dict[str, Any], metric: str) -> EpochReport | None:
    """The validation in a RUNNING line, or None when the line has no value for ``metric``."""
    if line.get("status") != "RUNNING" or not isinstance(line.get("kpi"), dict):
        return None
    epoch = _as_float(line.get("epoch"))
    if epoch is None or metric not in line["kpi"]:
        return None
    metrics = {}
    for key, raw in line["kpi"].items():
        value = _as_float(raw)
        if value is not None:
            metrics[str(key)] = value
    if metric not in metrics:
        return None
    seconds = parse_seconds(line.get("time_per_epoch"))
    if seconds is not None:
        metrics["seconds"] = seconds
    return EpochReport(epoch=int(epoch), metrics=metrics)


def final_report(line: dict[str, Any], metric: str) -> EpochReport | None:
    """The result of an action without epochs (quantize): a SUCCESS line whose kpi holds ``metric``
    and no ``epoch``, reported as epoch 0."""
    if line.get("status") != "SUCCESS" or "epoch" in line or not isinstance(line.get("kpi"), dict):
        return None
    metrics = {str(k): v for k, v in ((k, _as_float(raw)) for k, raw in line["kpi"].items()) if v is not None}
    return EpochReport(epoch=0, metrics=metrics) if metric in metrics else None


TRIAL_ACTIONS = ("train", "distill", "quantize")


def trial_status_file(folder: str | Path) -> Path:
    """A trial folder's status.json: ``<folder>/<action>/status.json`` of the action the trial ran
    (train, distill or quantize); the train path when none exists yet."""
    folder = Path(folder)
    for action in TRIAL_ACTIONS:
        path = folder / action / "status.json"
        if path.is_file():
            return path
    return folder / "train" / "status.json"
