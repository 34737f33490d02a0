"""MLflow tracking of a sweep: the sweep is a parent run, each trial and pipeline step a child run.

Only the orchestrator process writes (trial processes only write files), through ``MlflowClient``
with explicit run ids, never MLflow's fluent global run. Tracking never stops a sweep: a failed
write logs one warning naming what was not logged, the tracker is marked degraded, and later calls
keep trying (cheaply: HTTP stores get a short timeout and no retries). ``automl sync <sweep>`` fills
in whatever was missed. Run ids are kept in ``<sweep>/tracking.json``, so ``--resume`` continues
the same runs.

Example::

    tracker = Tracker.open(None, "automl", sweep_dir)   # sqlite:///<results_dir>/mlflow.db
    tracker.start_sweep(summary)
    tracker.trial_started(0, {"train.optim.lr": 1e-4}, sweep_dir / "trials" / "0000")
    tracker.trial_epoch(0, 1, {"val_mAP50": 0.41, "train_loss": 3.2})
    tracker.trial_finished(entry)
    tracker.finish_sweep(summary)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from automl.tracking.runs import SweepLog
from automl.tracking.store import RunWriter, resolve_tracking_uri

__all__ = ["DEFAULT_EXPERIMENT", "NullTracker", "Tracker"]

LOG = logging.getLogger("automl.tracking.tracker")
DEFAULT_EXPERIMENT = "automl"
OFF = ("none", "off")  # --tracking-uri none: no tracking at all
T = TypeVar("T")


class NullTracker:
    """Tracking turned off: every call does nothing (a :class:`SweepTracker`)."""

    degraded = False

    def start_sweep(self, summary: Mapping[str, Any]) -> None:
        return None

    def trial_started(self, number: int, params: Mapping[str, Any], folder: Path) -> None:
        return None

    def trial_epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        return None

    def trial_finished(self, entry: Mapping[str, Any]) -> None:
        return None

    def finish_sweep(self, summary: Mapping[str, Any]) -> None:
        return None

    def pipeline_step(
        self, step: str, metrics: Mapping[str, Any], artifacts: Sequence[Path], status: str
    ) -> None:
        return None


class Tracker:
    """Logs one sweep to one MLflow store (a :class:`SweepTracker`); no method ever raises."""

    def __init__(self, uri: str, experiment: str, sweep_dir: Path, model_name: str | None = None):
        self.missed: list[str] = []  # what was not logged, one line each
        self.log: SweepLog | None = None
        self.model_name = model_name
        self._lock = threading.Lock()  # trials report from their own threads; one write at a time
        self.uri = uri
        self.experiment = experiment
        self.sweep_dir = Path(sweep_dir)
        self.degraded = False

    @classmethod
    def open(
        cls, tracking_uri: str | None, experiment: str, sweep_dir: Path, model_name: str | None = None
    ) -> Tracker | NullTracker:
        """A tracker on ``tracking_uri`` (or ``MLFLOW_TRACKING_URI``, or the SQLite store under the
        results root, the sweep folder's parent); ``"none"`` or ``"off"`` give a ``NullTracker``. Never raises: a store that cannot be opened gives a
        degraded tracker that tries again at the next call."""
        if (tracking_uri or "").strip().lower() in OFF:
            return NullTracker()
        sweep_dir = Path(sweep_dir)
        uri = resolve_tracking_uri(tracking_uri, sweep_dir.parent)
        tracker = cls(uri, experiment or DEFAULT_EXPERIMENT, sweep_dir, model_name)
        tracker._connect()
        return tracker

    def _connect(self) -> SweepLog | None:
        if self.log is None:
            try:
                writer = RunWriter(self.uri, self.experiment, self.sweep_dir.parent)
                writer.experiment_id()
                self.log = SweepLog(writer, self.sweep_dir, self.sweep_dir.name, self.model_name)
            except Exception as exc:
                self._failed(f"opening the MLflow store {self.uri}", exc)
        return self.log

    def _failed(self, what: str, exc: BaseException) -> None:
        self.missed.append(what)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not self.degraded:
            LOG.warning(
                "MLflow tracking: %s was not logged (%s: %s); the sweep goes on, later tracking calls "
                "keep trying; `automl sync %s` fills in what was missed",
                what,
                type(exc).__name__,
                detail[:300],
                self.sweep_dir,
            )
        else:
            LOG.info("MLflow tracking still failing: %s was not logged (%s)", what, detail[:200])
        self.degraded = True

    def _call(self, what: str, action: Callable[[SweepLog], T]) -> T | None:
        with self._lock:
            return self._call_locked(what, action)

    def _call_locked(self, what: str, action: Callable[[SweepLog], T]) -> T | None:
        log = self._connect()
        if log is None:
            return None
        try:
            result = action(log)
        except Exception as exc:
            self._failed(what, exc)
            return None
        if self.degraded:
            LOG.info("MLflow tracking is reachable again (%s)", what)
            self.degraded = False
        return result

    # --- the sweep's events -------------------------------------------------------------------
    def start_sweep(self, summary: Mapping[str, Any]) -> None:
        self._call("the sweep run (tags, settings, search space)", lambda log: log.start(summary))

    def trial_started(self, number: int, params: Mapping[str, Any], folder: Path) -> None:
        def action(log: SweepLog) -> str:
            log.params[number] = dict(params)
            return log.trial(number, params, Path(folder))

        self._call(f"trial {number}'s run and params", action)

    def trial_epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        self._call(f"trial {number}'s epoch {epoch} metrics", lambda log: log.epoch(number, epoch, metrics))

    def trial_finished(self, entry: Mapping[str, Any]) -> None:
        number = entry.get("number")
        self._call(f"trial {number}'s result and files", lambda log: log.finish_trial(entry))

    def finish_sweep(self, summary: Mapping[str, Any]) -> None:
        started = time.monotonic()
        self._call("the sweep's result, plots and registered model", lambda log: log.finish(summary))
        LOG.debug("finish_sweep took %.1f s", time.monotonic() - started)

    def pipeline_step(
        self, step: str, metrics: Mapping[str, Any], artifacts: Sequence[Path], status: str
    ) -> None:
        self._call(f"pipeline step {step}", lambda log: log.step(step, metrics, list(artifacts), status))

    # --- for callers --------------------------------------------------------------------------
    @property
    def parent_run_id(self) -> str | None:
        return None if self.log is None else self.log.ids.get("parent_run_id")

    def run_id(self, number: int) -> str | None:
        return None if self.log is None else self.log.ids["trials"].get(str(number))
