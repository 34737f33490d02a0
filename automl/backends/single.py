"""The backend of plain training (``--policy off``): one trial, the spec's own values, no search.

It goes through the same loop as a search, so plain training gets the same trial folder, records,
tracking, failure classes, resume and pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

from automl.backends.base import AskTellBackend, SweepHooks, SweepPlan, TrialRequest
from automl.results.trial_record import TrialRecord, TrialState

__all__ = ["SingleTrialBackend"]


class SingleTrialBackend(AskTellBackend):
    name = "none"

    def __init__(self, plan: SweepPlan):
        super().__init__(plan)
        self.hooks: SweepHooks | None = None
        self.pending: str | None = None  # an interrupted run's folder, resumed by the next trial

    def open(self, hooks: SweepHooks, *, resume: bool) -> None:
        self.hooks = hooks
        if not resume:
            return
        for record in hooks.trials():
            if record.state == TrialState.RUNNING:
                hooks.trial_updated(
                    record.updated(
                        state=TrialState.FAIL,
                        requeued=True,
                        failure_class="killed",
                        error="interrupted when the orchestrator stopped; run again from its last checkpoint",
                    )
                )
                self.pending = record.folder

    def may_launch(self, launched: int, finished: Sequence[TrialRecord]) -> bool:
        return launched < 1

    def ask(self, finished: Sequence[TrialRecord]) -> TrialRequest | None:
        assert self.hooks is not None  # internal invariant: open() came first
        number = max((t.number for t in self.hooks.trials()), default=-1) + 1
        request = TrialRequest(number=number, params={}, resume_folder=self.pending)
        self.pending = None
        return request

    def report(self, request: TrialRequest, epoch: int, value: float) -> bool:
        return False

    def tell(self, request: TrialRequest, record: TrialRecord) -> None:
        return None
