"""One trial of a sweep as ``summary.json`` lists it: the :class:`TrialRecord`, defined once.

Every backend builds its records through the sweep loop (:mod:`automl.sweep.loop`), so the
optuna, ray and plain-training paths write the same fields. ``state`` is a :class:`TrialState`;
optional fields (where a trial ran, what it continued) are left out of the JSON when unset.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BestTrial", "TrialRecord", "TrialState"]


class TrialState(str, enum.Enum):
    """A trial's state, with Optuna's names (so the study and summary.json agree)."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"  # stopped early: by the schedule, or by the time budget
    FAIL = "FAIL"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

    @property
    def scored(self) -> bool:
        """A trial in this state may hold a result that counts (its best epoch)."""
        return self in (TrialState.COMPLETE, TrialState.PRUNED)


# Fields written only when set: where a trial ran and what it continues.
_OPTIONAL = (
    "baseline",
    "requeued",
    "resumed_from",
    "parent",
    "generation",
    "resume_epoch",
    "host",
    "worker",
    "node_id",
    "node_ip",
    "hostname",
    "ray_trial_id",
    "latency_ms",
)


@dataclass
class TrialRecord:
    number: int
    state: TrialState = TrialState.RUNNING
    params: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None
    started: float | None = None
    value: float | None = None  # the best epoch's metric
    best_epoch: int | None = None
    last_epoch: int | None = None
    last_value: float | None = None
    checkpoint: str | None = None  # the best epoch's checkpoint
    seconds: float | None = None
    failure_class: str | None = None  # automl.launch.failures.FAILURE_CLASSES
    error: str | None = None  # the reason a user can act on
    log: str | None = None
    # optional
    baseline: bool | None = None  # the spec's own values (run_baseline)
    requeued: bool | None = None  # interrupted; a copy with the same parameters runs instead
    resumed_from: str | None = None  # the interrupted trial's folder this one continues
    parent: int | None = None  # PBT: the trial whose checkpoint this one continues
    generation: int | None = None
    resume_epoch: int | None = None
    host: str | None = None  # automl worker: the process that ran it
    worker: str | None = None
    node_id: str | None = None  # Ray: where it ran
    node_ip: str | None = None
    hostname: str | None = None
    ray_trial_id: str | None = None
    latency_ms: float | None = (
        None  # --max-latency-ms: the network's measured latency (automl.launch.latency_gate)
    )

    def __post_init__(self) -> None:
        self.state = TrialState(self.state)

    @property
    def finished(self) -> bool:
        return self.state.finished

    @property
    def counts(self) -> bool:
        """Finished and not replaced by a re-queued copy: it uses the trial budget."""
        return self.state.finished and not self.requeued

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value is None:
                continue
            out[f.name] = value.value if isinstance(value, TrialState) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def updated(self, **changes: Any) -> TrialRecord:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class BestTrial:
    """``summary.json``'s ``best``: the trial a sweep hands to its pipeline."""

    trial: int
    params: dict[str, Any]
    value: float
    metric: str
    best_epoch: int | None
    last_value: float | None
    checkpoint: str | None
    folder: str | None

    @classmethod
    def of(cls, record: TrialRecord, metric: str) -> BestTrial:
        assert record.value is not None  # internal invariant: only scored trials are chosen
        return cls(
            trial=record.number,
            params=dict(record.params),
            value=float(record.value),
            metric=metric,
            best_epoch=record.best_epoch,
            last_value=record.last_value,
            checkpoint=record.checkpoint,
            folder=record.folder,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
