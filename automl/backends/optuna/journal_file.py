"""A sweep's Optuna journal file, checked (a torn last record repaired) before its study is opened.

A journal is one JSON object per line, appended under Optuna's lock file. A process killed while
writing leaves a torn last line; Optuna skips it when reading, but the next record is appended onto
it, and every later read of the line that results ends in a ``JSONDecodeError``. :func:`check_journal`
therefore looks at every line, under the same lock:

- a torn last record (a crash mid-write): its bytes are moved to ``<journal>.torn-<time>`` (kept, not
  thrown away), the journal is cut back to its last whole line, and a warning says so;
- a damaged record before the last: a :class:`SweepFolderError` naming the file and the line, and the
  rebuild (``automl run --resume SWEEP --rebuild-study``, :mod:`automl.backends.optuna.rebuild`).

:func:`read_definition` finds the sweep's definition (the study's ``automl_sweep`` attribute) in a
journal line by line, skipping lines it cannot read: what a rebuild needs when summary.json is lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from automl.errors import SweepFolderError
from automl.results.kept_files import aside_path
from automl.results.summary import rebuild_command

__all__ = ["check_journal", "journal_records", "read_definition", "rebuild_hint"]

_SET_STUDY_USER_ATTR = 2  # optuna.storages.journal's JournalOperation
_SNIPPET = 60


def rebuild_hint(sweep: Path | str, shared: bool = False) -> str:
    stop = "stop every `automl worker` of this study, then " if shared else ""
    return (
        f"the trial folders (trials/*/train/status.json) and summary.json still hold the results: {stop}"
        f"rebuild the study from them with {rebuild_command(sweep)}"
    )


def _problem(line: bytes) -> str | None:
    """Why a journal line is not a whole record; None when it is one."""
    if not line.endswith(b"\n"):
        return "cut off before its end of line"
    try:
        record = json.loads(line)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg} at column {exc.colno}"
    return None if isinstance(record, dict) and "op_code" in record else "not an Optuna journal record"


def journal_records(path: Path) -> list[dict[str, Any]]:
    """Every whole record of a journal, in order; lines that cannot be read are skipped."""
    records = []
    for line in path.read_bytes().splitlines(keepends=True):
        if _problem(line if line.endswith(b"\n") else line + b"\n") is None:
            records.append(json.loads(line))
    return records


def read_definition(path: Path, attr: str) -> dict[str, Any] | None:
    """The study's user attribute ``attr`` (the sweep definition) as the journal last set it."""
    found = None
    for record in journal_records(path):
        value = (
            (record.get("user_attr") or {}).get(attr)
            if record.get("op_code") == _SET_STUDY_USER_ATTR
            else None
        )
        if isinstance(value, dict):
            found = value
    return found


def check_journal(path: Path, sweep: Path | str, *, shared: bool = False) -> str | None:
    """Check every line of the journal (the module docstring); returns the warning when the torn last
    record was cut off, None when the journal is whole. A missing or empty journal is a
    :class:`SweepFolderError`."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.is_file() or path.stat().st_size == 0:
        what = "missing" if not path.is_file() else "empty"
        raise SweepFolderError(f"{path}: the sweep's study journal is {what}; {rebuild_hint(sweep, shared)}")
    lock = JournalFileSymlinkLock(str(path))  # no process appends while the journal is read and cut
    lock.acquire()
    try:
        return _check(path, sweep, shared)
    finally:
        lock.release()


def _check(path: Path, sweep: Path | str, shared: bool) -> str | None:
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        problem = _problem(line)
        if problem is None:
            continue
        snippet = line[:_SNIPPET].decode("utf-8", errors="replace")
        if number < len(lines):
            raise SweepFolderError(
                f"{path}: line {number} of {len(lines)} is a damaged record ({problem}: {snippet!r}...), "
                f"so the study cannot be read; {rebuild_hint(sweep, shared)} (the damaged journal is kept "
                f"beside it)"
            )
        return _cut_torn_tail(path, len(data) - len(line), line, number, problem)
    return None


def _cut_torn_tail(path: Path, offset: int, torn: bytes, number: int, problem: str) -> str:
    kept = aside_path(path, "torn")
    kept.write_bytes(torn)
    with open(path, "r+b") as handle:
        handle.truncate(offset)
        handle.flush()
        os.fsync(handle.fileno())
    return (
        f"warning: {path}: the last record (line {number}, {len(torn)} bytes) is torn, written when the "
        f"sweep was killed ({problem}); it was skipped and its bytes kept in {kept.name}"
    )
