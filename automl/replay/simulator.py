"""Replay a search on the curve table: the real backend (its sampler, pruner, PBT) decides, and
only the trials are simulated, each epoch's validation arriving at its simulated time.

The driver calls the backend exactly as :meth:`automl.sweep.loop.SweepLoop.run_ask_tell` does:
``may_launch -> ask`` while a worker is free, ``report`` with the trial's best value so far after
each epoch (True prunes it), ``tell`` with its final record. Instead of a thread pool of real
trainings it keeps an event queue over ``workers`` simulated workers, so a sweep of hundreds of
trials with 64 workers takes seconds, and the order in which results reach the backend is the
order they would reach it on that many machines.

A trial from scratch follows the surrogate's curve for its parameters; a PBT trial continues its
parent's value at the checkpoint it resumes, plus its own curve's gain over those epochs (no
lineage trains past the table's last epoch). Each
trial draws its own seed noise. The sweep ends when ``epoch_budget`` epochs are consumed (running
trials are cut there), or when the backend launches nothing more.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.backends.base import AskTellBackend, Continuation, SweepPlan, TrialRequest
from automl.replay.surrogate import Surrogate
from automl.results.trial_record import TrialRecord, TrialState

__all__ = ["ReplayResult", "ReplayStep", "replay_sweep"]


@dataclass(frozen=True)
class ReplayStep:
    """The sweep after one validation of any trial."""

    epochs: int  # epochs consumed by all trials so far
    seconds: float  # simulated wall time
    best_true: float  # the noise-free value of the best epoch seen so far (by its observed value)
    best_observed: float


@dataclass
class ReplayResult:
    steps: list[ReplayStep] = field(default_factory=list)
    trials: list[TrialRecord] = field(default_factory=list)
    stop_reason: str | None = None

    @property
    def epochs(self) -> int:
        return self.steps[-1].epochs if self.steps else 0

    def best_true_at(self, epochs: float) -> float | None:
        """The incumbent's noise-free value once ``epochs`` epochs were consumed (None before any)."""
        value = None
        for step in self.steps:
            if step.epochs > epochs:
                break
            value = step.best_true
        return value

    def epochs_to(self, target: float) -> int | None:
        """Epochs consumed when the incumbent's noise-free value first reached ``target``."""
        return next((s.epochs for s in self.steps if s.best_true >= target - 1e-12), None)


class _Hooks:
    """What ``Backend.open`` sees of the loop on a fresh sweep."""

    def __init__(self, plan: SweepPlan):
        self.plan = plan

    def past_deadline(self) -> bool:
        return False

    def trials(self) -> list[TrialRecord]:
        return []

    def trial_updated(self, record: TrialRecord) -> None:
        pass

    def set_summary(self, **fields: Any) -> None:
        pass

    def trial_started(self, record: TrialRecord, epochs: int, continues: Continuation | None = None) -> None:
        pass

    def trial_epoch(self, number: int, report: Any) -> None:
        pass

    def trial_finished(self, record: TrialRecord) -> TrialRecord:
        return record


@dataclass
class _Run:
    request: TrialRequest
    epochs: list[int]  # the epoch numbers it trains, in order
    true: dict[int, float]  # epoch -> noise-free value
    durations: dict[int, float]  # epoch -> simulated seconds (the first includes the start-up)
    offset: float
    epoch_std: float
    started: float
    index: int = 0
    observed: dict[int, float] = field(default_factory=dict)
    best_epoch: int | None = None

    @property
    def best_value(self) -> float | None:
        return None if self.best_epoch is None else self.observed[self.best_epoch]


def _new_run(
    request: TrialRequest,
    plan: SweepPlan,
    surrogate: Surrogate,
    done: dict[int, _Run],
    now: float,
    rng: random.Random,
) -> _Run:
    prediction = surrogate.predict(request.params)
    offset, epoch_std = surrogate.noise(rng)
    clone, horizon = request.continues, surrogate.table.max_epochs  # the table knows no later epoch
    if clone is None:
        epochs = list(range(1, min(plan.max_epochs, horizon) + 1))
        true = {e: prediction.values[e - 1] for e in epochs}
        durations = {e: prediction.epoch_seconds(e) for e in epochs}
    else:  # the parent's weights at the checkpoint it resumes, then this trial's own gains
        parent = done[clone.parent]
        base_epoch = clone.resume_epoch - 1
        base = parent.true[base_epoch]
        offset = parent.offset  # the same weights: the parent's luck carries over
        epochs = list(range(clone.resume_epoch, min(clone.epochs, horizon) + 1))
        true = {e: base + prediction.values[e - 1] - prediction.values[base_epoch - 1] for e in epochs}
        durations = {e: prediction.epoch_seconds(e) for e in epochs}
        if epochs and epochs[0] > 1:  # a new process loads the checkpoint first
            durations[epochs[0]] += prediction.start_up
    return _Run(request, epochs, true, durations, offset, epoch_std, now)


def replay_sweep(
    backend: AskTellBackend,
    plan: SweepPlan,
    surrogate: Surrogate,
    *,
    workers: int = 1,
    epoch_budget: int | None = None,
    seed: int = 0,
) -> ReplayResult:
    """Run ``backend`` over ``plan`` with simulated trials (see the module docstring)."""
    rng, horizon = random.Random(seed), surrogate.table.max_epochs
    backend.open(_Hooks(plan), resume=False)
    result = ReplayResult()
    queue: list[tuple[float, int, _Run]] = []
    done: dict[int, _Run] = {}
    finished: list[TrialRecord] = []
    now, consumed, launched, order = 0.0, 0, 0, 0
    best_observed, best_true = float("-inf"), float("-inf")
    try:
        while True:
            while len(queue) < workers and (epoch_budget is None or consumed < epoch_budget):
                if not backend.may_launch(launched, finished):
                    break
                request = backend.ask(finished)
                if request is None:
                    break
                launched += 1
                run = _new_run(request, plan, surrogate, done, now, rng)
                if not run.epochs:  # a clone of a trial at its last epoch: trains nothing, no metric
                    done[request.number] = run
                    finished.append(_record(run, plan, now, TrialState.FAIL, horizon))
                    backend.tell(request, finished[-1])
                    continue
                order += 1
                heapq.heappush(queue, (now + run.durations[run.epochs[0]], order, run))
            if not queue:
                result.stop_reason = backend.stop_reason(launched)
                break
            now, _, run = heapq.heappop(queue)
            epoch = run.epochs[run.index]
            consumed += 1
            value = surrogate.observe(run.true[epoch], run.offset, run.epoch_std, rng)
            run.observed[epoch] = value
            if run.best_epoch is None or value > run.observed[run.best_epoch]:
                run.best_epoch = epoch
            if value > best_observed:
                best_observed, best_true = value, run.true[epoch]
            result.steps.append(ReplayStep(consumed, round(now, 3), best_true, best_observed))
            if epoch_budget is not None and consumed >= epoch_budget:
                result.stop_reason = f"the budget of {epoch_budget} epochs is used"
                break
            pruned = backend.report(run.request, epoch, float(run.best_value or 0.0))
            run.index += 1
            if pruned or run.index >= len(run.epochs):
                done[run.request.number] = run
                state = TrialState.PRUNED if pruned and run.index < len(run.epochs) else TrialState.COMPLETE
                record = _record(run, plan, now, state, horizon)
                backend.tell(run.request, record)
                finished.append(record)
                continue
            order += 1
            heapq.heappush(queue, (now + run.durations[run.epochs[run.index]], order, run))
    finally:
        backend.close()
    result.trials = finished
    return result


def _record(run: _Run, plan: SweepPlan, now: float, state: TrialState, horizon: int) -> TrialRecord:
    """The record a real trial would leave, with an (empty) checkpoint file of its best epoch, so PBT
    can pick it as a parent; a best epoch at the table's last epoch leaves none (the table cannot say
    what training further would do, so PBT must not continue it)."""
    request, clone = run.request, run.request.continues
    folder = plan.trial_folder(request.number)
    checkpoint = None
    if run.best_epoch is not None and run.best_epoch < horizon:
        path = Path(folder) / plan.action / f"model_epoch_{run.best_epoch:03d}.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        checkpoint = str(path)
    last = run.epochs[run.index - 1] if run.index else None
    return TrialRecord(
        number=request.number,
        state=state,
        params=request.params,
        folder=str(folder),
        started=run.started,
        value=run.best_value,
        best_epoch=run.best_epoch,
        last_epoch=last,
        last_value=run.observed.get(last) if last is not None else None,
        checkpoint=checkpoint,
        seconds=round(now - run.started, 3),
        baseline=True if request.baseline else None,
        parent=clone.parent if clone else None,
        generation=clone.generation if clone else None,
        resume_epoch=clone.resume_epoch if clone else None,
    )
