"""The one interface between the sweep loop and a search backend.

A backend decides *what* runs (parameters, which trial a new one continues) and *when a trial
stops* (pruning); the sweep loop (:mod:`automl.sweep.loop`) owns everything else: trial folders and
specs, the launcher, status.json tailing, the time budget, ``summary.json``, MLflow and the display.

Two shapes of backend share the interface, as Optuna and Ray Tune do:

- an :class:`AskTellBackend` suggests in this process (Optuna): the loop drives it,
  ``ask -> report(epoch)... -> tell``, running trials in its own thread pool;
- a backend that owns execution (Ray Tune runs trials on a cluster) implements :meth:`Backend.run`
  and hands every trial event to the loop through :class:`SweepHooks`, so the same records,
  tracking and display come out.

Backends import from this module, :mod:`automl.results`, :mod:`automl.launch` and
:mod:`automl.space`, never from the loop above them.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from automl.launch.status_tail import EpochReport
from automl.results.objective import Objective
from automl.results.trial_record import TrialRecord
from automl.settings.tao_settings import AutomlSettings
from automl.space.params import SearchSpace

__all__ = ["AskTellBackend", "Backend", "Continuation", "SweepHooks", "SweepPlan", "TrialRequest"]


@dataclass
class SweepPlan:
    """What a backend and the loop need to know about one sweep (built by ``automl run`` / ``worker``)."""

    folder: Path
    base_spec: dict[str, Any]
    space: SearchSpace | None  # None: plain training (policy off)
    settings: AutomlSettings
    max_epochs: int
    concurrency: int
    devices: list[int] | None = None
    trial_env: dict[str, str] = field(default_factory=dict)
    # what each trial runs: train | distill | quantize (automl.settings.action_profiles)
    action: str = "train"
    storage: str | None = None  # a shared study storage URL (automl worker processes may join)
    study: str | None = None  # the study's name in that storage
    ray_address: str | None = None
    definition: dict[str, Any] = field(default_factory=dict)  # what a worker needs to join (shared storage)

    @property
    def objective(self) -> Objective:
        return Objective(self.settings.metric, self.settings.direction)

    @property
    def multi_fidelity(self) -> bool:
        return self.space is not None and self.settings.fidelity in ("hyperband", "asha")

    def trial_folder(self, number: int) -> Path:
        """``<sweep>/trials/<nnnn>``: the trial's own results_dir."""
        return self.folder / "trials" / f"{number:04d}"


@dataclass(frozen=True)
class Continuation:
    """A trial that continues another trial's checkpoint (population based training)."""

    parent: int
    checkpoint: str
    resume_epoch: int  # the first epoch it trains
    epochs: int  # train.num_epochs: resume_epoch + the interval
    generation: int


@dataclass
class TrialRequest:
    """The next trial a backend wants run."""

    number: int
    params: dict[str, Any]
    resume_folder: str | None = None  # an interrupted trial's folder: copy it and resume from it
    continues: Continuation | None = None
    baseline: bool = False
    labels: dict[str, Any] = field(default_factory=dict)  # recorded with the trial (host, worker)
    handle: Any = None  # the backend's own object for this trial (an Optuna trial)


class SweepHooks(Protocol):
    """The loop's side, as a backend sees it."""

    plan: SweepPlan

    def past_deadline(self) -> bool: ...

    def trial_updated(self, record: TrialRecord) -> None: ...

    def set_summary(self, **fields: Any) -> None: ...

    def trial_started(
        self, record: TrialRecord, epochs: int, continues: Continuation | None = None
    ) -> None: ...

    def trial_epoch(self, number: int, report: EpochReport) -> None: ...

    def trial_finished(self, record: TrialRecord) -> TrialRecord: ...

    def trials(self) -> list[TrialRecord]: ...


class Backend(abc.ABC):
    """A search backend; chosen by name through :func:`automl.backends.make_backend`."""

    name: str = ""

    def __init__(self, plan: SweepPlan):
        self.plan = plan

    @abc.abstractmethod
    def open(self, hooks: SweepHooks, *, resume: bool) -> None:
        """Create (or, on ``--resume``, reopen) the backend's state; on a resume, re-queue the trials
        an interrupted run left RUNNING (marking their records ``requeued``)."""

    @abc.abstractmethod
    def run(self, hooks: SweepHooks) -> str | None:
        """Run trials until the budget is used; returns why it stopped early, or None."""

    def ledger(self) -> list[TrialRecord] | None:
        """Every trial of the sweep when the backend's storage is shared by several processes (the
        source of truth, written by each); None when the loop's own records are complete."""
        return None

    def close(self) -> None:  # noqa: B027 - optional for backends that hold nothing
        """Release what :meth:`open` took."""


class AskTellBackend(Backend):
    """A backend that suggests in this process; the loop runs its trials (``SweepLoop.run_ask_tell``)."""

    def run(self, hooks: SweepHooks) -> str | None:
        runner = getattr(hooks, "run_ask_tell", None)
        if runner is None:
            raise TypeError("an ask/tell backend needs the sweep loop's run_ask_tell")
        return runner(self)

    @abc.abstractmethod
    def may_launch(self, launched: int, finished: Sequence[TrialRecord]) -> bool:
        """Whether another trial may start now, ``launched`` having started in this run."""

    @abc.abstractmethod
    def ask(self, finished: Sequence[TrialRecord]) -> TrialRequest | None:
        """The next trial, or None when the budget is used (another process took the last one)."""

    @abc.abstractmethod
    def report(self, request: TrialRequest, epoch: int, value: float) -> bool:
        """One validation (the trial's best value so far); True stops the trial (prune)."""

    @abc.abstractmethod
    def tell(self, request: TrialRequest, record: TrialRecord) -> None:
        """The trial's final record (state, value)."""

    def stop_reason(self, launched: int) -> str | None:
        """Why no further trial can start although the budget is not used (PBT: nothing to continue)."""
        return None
