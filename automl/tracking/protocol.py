"""What a sweep reports its events to: MLflow (:class:`automl.tracking.tracker.Tracker`) or nothing
(:class:`automl.tracking.tracker.NullTracker`).

The sweep loop, ``automl run``/``automl worker`` and the best trial's pipeline know a tracker only
through :class:`SweepTracker`. An implementation never raises: what it could not log it remembers
(``degraded``), and ``automl sync`` fills it in later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["SweepTracker"]


class SweepTracker(Protocol):
    @property
    def degraded(self) -> bool:
        """True while the last call could not log (the store is unreachable)."""
        ...

    def start_sweep(self, summary: Mapping[str, Any]) -> None:
        """The sweep's run: its settings, algorithm and search space (``summary.json``'s data)."""
        ...

    def trial_started(self, number: int, params: Mapping[str, Any], folder: Path) -> None: ...

    def trial_epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def trial_finished(self, entry: Mapping[str, Any]) -> None:
        """``entry``: the trial's record as ``summary.json`` lists it."""
        ...

    def finish_sweep(self, summary: Mapping[str, Any]) -> None:
        """The sweep's result, plots and registered model; called again after the pipeline."""
        ...

    def pipeline_step(
        self, step: str, metrics: Mapping[str, Any], artifacts: Sequence[Path], status: str
    ) -> None: ...
