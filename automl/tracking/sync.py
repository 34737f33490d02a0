"""``automl sync <sweep>``: log a sweep folder to MLflow after the fact, without duplicating anything.

For a sweep whose tracking failed part way (server down, store unreachable) or that ran with
tracking off. Replays summary.json, each trial's status.json and files, and the pipeline steps:
runs are matched by the ids in ``tracking.json``, else by their tags (sweep name + trial number),
else created; metric points are added only for steps the run does not hold yet; files only when
absent. Running it twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.errors import AutomlError
from automl.launch.status_tail import trial_status_file
from automl.results.summary import read_summary
from automl.tracking.runs import TERMINAL, SweepLog
from automl.tracking.store import RunWriter, finite_float, read_ids, resolve_tracking_uri, status_epochs
from automl.tracking.tracker import DEFAULT_EXPERIMENT

__all__ = ["sync_sweep"]


@dataclass
class SyncReport:
    """What one sync added to the store."""

    tracking_uri: str
    experiment: str
    parent_run_id: str = ""
    runs_created: int = 0
    metric_points: int = 0
    trials: int = 0
    steps: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"store: {self.tracking_uri} (experiment {self.experiment!r})",
            f"sweep run: {self.parent_run_id}",
            f"trials: {self.trials}, new runs: {self.runs_created}, new metric points: {self.metric_points}",
            f"pipeline steps: {', '.join(self.steps) or 'none'}",
        ]


def _step_record(name: str, record: Any) -> tuple[dict[str, float], list[Path], str] | None:
    """A pipeline entry of summary.json -> (metrics, files, status); None when it holds nothing."""
    if not isinstance(record, dict):
        return None
    metrics: dict[str, float] = {}
    files: list[Path] = []
    for key, value in record.items():
        number = finite_float(value)
        if number is not None:
            metrics[str(key)] = number
        elif isinstance(value, dict):
            prefix = "" if key == "metrics" else f"{key}."  # the pipeline's step metrics go in unprefixed
            numbers = {f"{prefix}{k}": finite_float(v) for k, v in value.items()}
            metrics.update({k: v for k, v in numbers.items() if v is not None})
        elif isinstance(value, str) and key.endswith(("_file", "_path", "_dir")) and Path(value).exists():
            files.append(Path(value))
    status = record.get("status") or record.get("state") or ("FAILURE" if record.get("error") else "SUCCESS")
    return metrics, files, str(status)


def sync_sweep(
    sweep_dir: str | Path, tracking_uri: str | None = None, experiment: str | None = None
) -> SyncReport:
    """Logs everything in ``sweep_dir`` that the store does not hold yet; returns what was added.

    The store and experiment default to the ones in ``<sweep>/tracking.json``, then to the SQLite
    store under the results root and the experiment ``automl``.
    """
    sweep_dir = Path(sweep_dir)
    summary = read_summary(sweep_dir)
    known = read_ids(sweep_dir)
    uri = resolve_tracking_uri(tracking_uri or known.get("tracking_uri"), sweep_dir.parent)
    experiment = experiment or known.get("experiment") or DEFAULT_EXPERIMENT
    report = SyncReport(tracking_uri=uri, experiment=experiment)
    try:
        writer = RunWriter(uri, experiment, sweep_dir.parent)
        log = SweepLog(writer, sweep_dir, str(summary.get("name") or sweep_dir.name))
        before = _count_runs(writer)
        report.parent_run_id = log.start(summary)
        for entry in summary.get("trials") or []:
            report.trials += 1
            report.metric_points += _sync_trial(log, entry, sweep_dir)
        for name, record in (summary.get("pipeline") or {}).items():
            parts = _step_record(name, record)
            if parts is not None:
                log.step(name, *parts)
                report.steps.append(name)
        if summary.get("status") != "RUNNING":
            log.finish(summary)
        report.runs_created = _count_runs(writer) - before
    except AutomlError:
        raise
    except Exception as exc:
        raise AutomlError(
            f"automl sync {sweep_dir}: the MLflow store {uri} failed ({type(exc).__name__}: "
            f"{str(exc).strip()[:300]}); check that it is reachable (--tracking-uri) and run sync again"
        ) from exc
    return report


def _count_runs(writer: RunWriter) -> int:
    return len(writer.client.search_runs([writer.experiment_id()], max_results=50000))


def _sync_trial(log: SweepLog, entry: dict[str, Any], sweep_dir: Path) -> int:
    number = int(entry["number"])
    folder = Path(entry.get("folder") or sweep_dir / "trials" / f"{number:04d}")
    run_id = log.trial(number, entry.get("params") or {}, folder)
    added = log.writer.log_steps(run_id, status_epochs(trial_status_file(folder)))
    if entry.get("state") in TERMINAL:
        log.finish_trial(entry, fill_history=False)
    return added
