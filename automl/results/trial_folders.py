"""A trial as its folder tells it: what a rebuild of a damaged summary.json or study reads back.

A trial folder (``<sweep>/trials/NNNN``) holds ``spec.yaml`` (the trial's spec: its parameters are the
space's keys in it), ``trial.log`` and ``<action>/status.json`` (TAO's lines: each validation's kpi,
then SUCCESS or FAILURE). :func:`folder_record` reads a :class:`TrialRecord` back from them: COMPLETE
after SUCCESS; FAIL after a FAILURE the trial caused (with its message and failure class); RUNNING,
that is interrupted (the resume re-queues it and it goes on from its checkpoint), when it stopped
without a result or by a signal. :func:`settled` gives it the study's state where the study knows
one. ``started`` and ``seconds`` are not in the folder and stay unset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from automl.launch.failures import classify
from automl.launch.status_tail import EpochReport, StatusTail, epoch_report, final_report, trial_status_file
from automl.results.objective import Objective
from automl.results.trial_record import TrialRecord, TrialState
from automl.settings.action_profiles import action_profile
from automl.spec import get_dotted

__all__ = ["folder_record", "merge_records", "reported_values", "settled", "trial_numbers", "validations"]

_STOPPED_BY_SIGNAL = re.compile(r"interrupted by SIG|SIGTERM|SIGKILL|SIGINT", re.IGNORECASE)
_UNSET = object()


def trial_numbers(sweep: Path) -> list[int]:
    """The trial numbers that have a folder under ``<sweep>/trials``."""
    folder = sweep / "trials"
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def _status_lines(folder: Path) -> list[dict[str, Any]]:
    return StatusTail(trial_status_file(folder)).read()


def validations(folder: Path, metric: str, action: str = "train") -> list[EpochReport]:
    """The trial's validations (one per epoch; the last line of an epoch wins), in epoch order."""
    per_epoch = action_profile(action).per_epoch
    found: dict[int, EpochReport] = {}
    for line in _status_lines(folder):
        report = epoch_report(line, metric) if per_epoch else final_report(line, metric)
        if report is not None:
            found[report.epoch] = report
    return [found[e] for e in sorted(found)]


def reported_values(history: Sequence[EpochReport], objective: Objective) -> list[tuple[int, float]]:
    """(epoch, best value so far): what the sweep loop reported to the study after each epoch."""
    out: list[tuple[int, float]] = []
    best: float | None = None
    for report in history:
        value = report.metrics.get(objective.metric)
        if value is None:
            continue
        best = float(value) if best is None else objective.pick(best, float(value))
        out.append((report.epoch, best))
    return out


def _params(folder: Path, names: Iterable[str]) -> dict[str, Any]:
    try:
        spec = yaml.safe_load((folder / "spec.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    if not isinstance(spec, dict):
        return {}
    values = {name: get_dotted(spec, name, _UNSET) for name in names}
    return {name: value for name, value in values.items() if value is not _UNSET}


def folder_record(
    folder: Path, number: int, param_names: Iterable[str], objective: Objective, action: str = "train"
) -> TrialRecord | None:
    """The trial's record as its folder tells it (the module docstring); None without a folder."""
    if not folder.is_dir():
        return None
    lines = _status_lines(folder)
    history = validations(folder, objective.metric, action)
    best = objective.best(history, lambda r: r.metrics.get(objective.metric))
    last = lines[-1] if lines else None
    status = (last or {}).get("status")
    epochs = [
        line["epoch"]
        for line in lines
        if line.get("status") == "RUNNING" and isinstance(line.get("epoch"), int)
    ]
    log = folder / "trial.log"
    record = TrialRecord(
        number,
        state=TrialState.RUNNING,
        params=_params(folder, param_names),
        folder=str(folder),
        value=best.metrics[objective.metric] if best is not None else None,
        best_epoch=best.epoch if best is not None else None,
        last_epoch=max(epochs) if epochs else None,
        last_value=history[-1].metrics.get(objective.metric) if history else None,
        checkpoint=_checkpoint(folder / action, best.epoch) if best is not None else None,
        log=str(log) if log.is_file() else None,
    )
    message = str((last or {}).get("message") or "")
    if status == "SUCCESS" and best is not None:
        return record.updated(state=TrialState.COMPLETE)
    if status == "SUCCESS":  # as the loop records it
        reason = f"training finished without a {objective.metric} value"
        return record.updated(state=TrialState.FAIL, failure_class="no_metric", error=reason)
    if status == "FAILURE" and not _STOPPED_BY_SIGNAL.search(message):
        failure = classify(1, last, _log_tail(log))
        return record.updated(
            state=TrialState.FAIL,
            failure_class=failure.kind if failure else "exit_code",
            error=failure.reason if failure else message,
        )
    return record  # interrupted: no result, or stopped by a signal


def settled(record: TrialRecord, state: TrialState | None = None) -> TrialRecord:
    """A folder's record in its final state: the study's ``state`` when it knows one (a folder cannot
    tell a prune from a kill: both stop the trial with SIGTERM), else the folder's. A trial left
    RUNNING holds no result, as the loop's record of a running trial."""
    state = state or record.state
    if not state.finished:
        return TrialRecord(record.number, params=record.params, folder=record.folder, log=record.log)
    if state == TrialState.PRUNED and record.state != TrialState.PRUNED:
        record = record.updated(error=f"pruned by the search after epoch {record.last_epoch}")
    return record.updated(state=state)


def _log_tail(log: Path, size: int = 64 * 1024) -> list[str]:
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - size))
            return handle.read().decode("utf-8", errors="replace").splitlines()[-60:]
    except OSError:
        return []


def _checkpoint(action_dir: Path, epoch: int) -> str | None:
    path = action_dir / f"model_epoch_{epoch:03d}.pth"
    return str(path) if path.is_file() else None


def merge_records(known: Iterable[TrialRecord], found: Iterable[TrialRecord]) -> list[TrialRecord]:
    """``known`` records (summary.json's, or the study's) win; ``found`` (the folders') fill the gaps."""
    merged = {r.number: r for r in found}
    merged.update({r.number: r for r in known})
    return [merged[n] for n in sorted(merged)]
