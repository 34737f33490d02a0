"""``<sweep>/summary.json``: the sweep's record, rewritten atomically after every trial event.

Layout: ``name``, ``status`` (RUNNING|FINISHED|FAILED|STOPPED), ``policy`` {decision, reason, message},
``backend``, ``algorithm``, ``settings``, ``config`` (what ``--resume`` needs), ``space`` (searched and
excluded parameters), ``trials`` (:class:`automl.results.trial_record.TrialRecord` each: number, state,
params, value (the best epoch's metric), best_epoch, last_epoch, checkpoint, seconds, failure_class,
error, folder; with Ray also node_id, node_ip, hostname, ray_trial_id; with ``automl worker``
processes also host and worker), ``best`` {...}, ``pipeline`` {evaluate, export, gen_trt_engine,
engine_evaluate: state, metrics, seconds, ...} and, with Ray, ``ray`` {address, scheduler, ...}.

A sweep on a shared study storage keeps its trials in the storage (the ledger every process writes);
this file then lists them as the storage held them when it was last written.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from automl.results.trial_record import TrialRecord

__all__ = ["SUMMARY", "SweepSummary", "continue_hint", "read_summary", "rebuild_command", "write_json_atomic"]

SUMMARY = "summary.json"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``path`` whole or not at all: a failed write (a full disk) leaves the previous file as
    it was and no temporary behind, and is a :class:`SweepWriteError` naming the file."""
    from automl.errors import SweepWriteError

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    text = json.dumps(_json_safe(data), indent=2)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        kept = f"the previous {path.name} is kept as it was" if path.is_file() else "nothing was written"
        raise SweepWriteError(f"{path}: could not be written ({exc.strerror or exc}); {kept}") from None


def continue_hint(sweep: str | Path) -> str:
    """What to do after the sweep stopped because its disk is full (or read-only)."""
    return (
        f"The sweep stopped; the trials finished so far are kept in {Path(sweep) / 'trials'}/. Free space "
        f"on that disk (or make it writable), then continue with `automl run --resume {sweep}`"
    )


def rebuild_command(sweep: str | Path) -> str:
    return f"`automl run --resume {sweep} --rebuild-study`"


def read_summary(sweep: str | Path) -> dict[str, Any]:
    """The sweep's summary.json; a missing or damaged one is a :class:`SweepFolderError` that says what
    still holds the results (the trial folders, the study journal) and how to rebuild it."""
    from automl.errors import SweepFolderError

    path = Path(sweep) / SUMMARY
    holders = (
        f"the trial folders ({Path(sweep) / 'trials'}/) and the study journal ({Path(sweep) / 'optuna.journal'}, "
        f"or the sweep's --storage) still hold the results: rebuild {SUMMARY} from them with {rebuild_command(sweep)}"
    )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        if (Path(sweep) / "trials").is_dir():
            raise SweepFolderError(f"{path}: missing; {holders}") from None
        raise SweepFolderError(f"{sweep}: no {SUMMARY} here; give the folder `automl run` printed") from None
    except (ValueError, OSError) as exc:  # JSONDecodeError, UnicodeDecodeError, a folder named summary.json
        raise SweepFolderError(
            f"{path}: unreadable ({' '.join(str(exc).split())[:200]}); {holders}"
        ) from None
    if not isinstance(data, dict):
        raise SweepFolderError(
            f"{path}: not a sweep summary (a JSON {type(data).__name__}, not an object); {holders}"
        )
    return data


class SweepSummary:
    """Thread-safe holder of the summary document; its trials are :class:`TrialRecord` objects."""

    def __init__(self, folder: Path, data: dict[str, Any]):
        self.folder = folder
        self.path = folder / SUMMARY
        self.data = data
        self._lock = threading.Lock()
        self.data.setdefault("pipeline", {})
        self._trials = {int(t["number"]): TrialRecord.from_dict(t) for t in self.data.get("trials") or []}
        self._sync_trials()

    def _sync_trials(self) -> None:
        self.data["trials"] = [self._trials[n].to_dict() for n in sorted(self._trials)]

    def save(self) -> None:
        from automl.errors import SweepWriteError

        with self._lock:
            self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            try:
                write_json_atomic(self.path, self.data)
            except SweepWriteError as exc:
                raise SweepWriteError(f"{exc}. {continue_hint(self.folder)}") from None

    def put(self, record: TrialRecord) -> None:
        """Add or replace one trial's record."""
        with self._lock:
            self._trials[record.number] = record
            self._sync_trials()
        self.save()

    def replace_trials(self, records: Iterable[TrialRecord]) -> None:
        """The trials as the ledger (a shared study storage) holds them."""
        with self._lock:
            self._trials = {r.number: r for r in records}
            self._sync_trials()
        self.save()

    def get(self, number: int) -> TrialRecord | None:
        with self._lock:
            return self._trials.get(number)

    def set(self, **fields: Any) -> None:
        with self._lock:
            self.data.update(fields)
        self.save()

    def trials(self) -> list[TrialRecord]:
        with self._lock:
            return [self._trials[n] for n in sorted(self._trials)]
