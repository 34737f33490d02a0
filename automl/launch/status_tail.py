"""Reading a trial's ``status.json`` while it is being written.

TAO's format: one JSON object per line, appended by rank 0 (``STARTED``, per-epoch ``RUNNING`` lines
with ``epoch``, ``time_per_epoch`` "H:MM:SS" and ``kpi`` values as strings, then ``SUCCESS`` or
``FAILURE``). ``StatusTail`` reads only what was appended since its last call, keeps a half-written
last line for the next call and waits quietly for a file that does not exist yet.

A new run in a folder whose training had finished moves the finished run's lines to
``status.run<N>.json`` and starts a fresh ``status.json`` (``rtdetr train``'s rule):
:func:`earlier_runs` lists those files, oldest first, and ``StatusTail`` notices the replaced file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EpochReport",
    "StatusTail",
    "earlier_runs",
    "epoch_report",
    "every_run_lines",
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
        self._inode = _inode(self.path)

    def read(self) -> list[dict[str, Any]]:
        """The complete lines appended since the last call (unparsable lines are skipped)."""
        try:
            with open(self.path, "rb") as handle:
                inode = os.fstat(handle.fileno()).st_ino
                size = handle.seek(0, 2)
                if size < self.offset or inode != self._inode:  # the file was replaced: start over
                    self.offset, self._partial = 0, b""
                self._inode = inode
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


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


_ARCHIVED = re.compile(r"status\.run(\d+)\.json$")


def earlier_runs(action_dir: str | Path) -> list[Path]:
    """The finished runs' status files a later run moved aside (``status.run<N>.json``), oldest first."""
    try:
        entries = list(Path(action_dir).iterdir())
    except OSError:
        return []
    found = [(int(m.group(1)), p) for p in entries if (m := _ARCHIVED.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def every_run_lines(status_path: str | Path) -> list[dict[str, Any]]:
    """The lines of every run in a folder: the finished runs moved aside, then ``status.json``."""
    status_path = Path(status_path)
    return [
        line for path in [*earlier_runs(status_path.parent), status_path] for line in StatusTail(path).read()
    ]


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
