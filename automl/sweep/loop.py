"""The sweep loop: runs a backend's trials as real processes and keeps the sweep's record.

The loop knows no backend by name (:mod:`automl.backends.base` is the interface). For an ask/tell
backend it launches the trials itself, concurrently (one thread per running trial: on GPUs each
trial gets ``train.num_gpus`` devices of its own, on a CPU machine ``concurrency`` slots): ask ->
folder and spec -> launcher (tails status.json) -> each validation to the backend, which may stop
the trial -> tell. A backend that runs trials itself (Ray Tune) reports the same events through the
same hooks. Either way the loop applies the time budget, writes ``summary.json`` after every event,
logs to MLflow, updates the display, and stops early when every trial fails for the same reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from automl.backends.base import AskTellBackend, Backend, Continuation, SweepPlan, TrialRequest
from automl.backends.plateau import plateau_rule
from automl.errors import SweepWriteError
from automl.launch.devices import GpuPool
from automl.launch.latency_gate import INFEASIBLE, LatencyGate, LatencyUnmeasured
from automl.launch.launcher import EpochReport, TrialOutcome, run_trial, stop_all_trials
from automl.launch.trial_spec import continue_spec, spec_for_params
from automl.results.pareto import front_entries, pareto_front
from automl.results.selection import best_trial, keep_only_best_checkpoint, shared_failure
from automl.results.summary import SweepSummary, continue_hint
from automl.results.trial_record import BestTrial, TrialRecord, TrialState
from automl.spec import get_dotted, set_dotted
from automl.sweep.display import SweepDisplay
from automl.tracking.protocol import SweepTracker
from automl.tracking.tracker import NullTracker

__all__ = ["SweepLoop", "SweepPlan"]


@contextlib.contextmanager
def _trials_stopped_on_ctrl_c() -> Iterator[None]:
    """Ctrl-C stops the running trials (SIGTERM: each saves a checkpoint and exits, and stays RUNNING
    in summary.json, so ``--resume`` continues it) instead of waiting for them to finish."""
    try:
        yield
    except KeyboardInterrupt:
        stop_all_trials()
        raise


class SweepLoop:
    """One run of a sweep (``automl run``, ``--resume`` or an ``automl worker`` process)."""

    def __init__(
        self,
        plan: SweepPlan,
        summary: SweepSummary,
        display: SweepDisplay,
        tracker: SweepTracker | None = None,
    ):
        self.plan = plan
        self.summary = summary
        self.display = display
        self.tracker: SweepTracker = tracker if tracker is not None else NullTracker()
        self.objective = plan.objective
        self.lock = threading.Lock()
        self.stop_reason: str | None = None
        self.gpus_per_trial = int(get_dotted(plan.base_spec, "train.num_gpus", 1) or 1)
        self.pool = GpuPool(plan.devices, concurrency=plan.concurrency)
        budget = plan.settings.time_budget if plan.space is not None else None
        self.deadline = time.monotonic() + budget if budget else None
        self.over_time: set[int] = set()
        self.best_so_far: dict[int, float] = {}
        # automl_checkpoint_retention_strategy=terminal: a trial saves (and hands on) its last epoch only
        self.terminal = plan.settings.checkpoint_retention_strategy == "terminal"
        self.plateau = plateau_rule(plan.settings)  # hyperband_es: stop trials that stopped improving
        self.values: dict[int, list[float]] = {}
        self.plateaued: dict[int, int] = {}  # trial -> the epoch it was stopped after
        limit = plan.settings.max_latency_ms
        # the trial's CPU share, as its training gets it (an OMP_NUM_THREADS given by the user wins)
        threads = (
            None
            if "OMP_NUM_THREADS" in os.environ
            else max(1, (os.cpu_count() or 1) // max(1, plan.concurrency))
        )
        measured = plan.settings.measures_latency and plan.space is not None  # a limit, or --objectives
        self.latency = LatencyGate(limit, plan.folder, threads) if measured else None

    # --- the hooks every backend reports through ---------------------------------------------
    def past_deadline(self) -> bool:
        """The search's time budget (``time_budget``, counted from this run's start) is used up."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def trials(self) -> list[TrialRecord]:
        return self.summary.trials()

    def set_summary(self, **fields: Any) -> None:
        """Sweep-level fields of summary.json a backend adds (Ray: where it runs)."""
        self.summary.set(**fields)

    def trial_updated(self, record: TrialRecord) -> None:
        """A record changed without a trial event (re-queued on a resume)."""
        self.summary.put(record)

    def trial_started(self, record: TrialRecord, epochs: int, continues: Continuation | None = None) -> None:
        self.summary.put(record)
        self.tracker.trial_started(record.number, record.params, Path(str(record.folder)))
        note = f"continues trial {continues.parent} from epoch {continues.resume_epoch}" if continues else ""
        first = continues.resume_epoch if continues else 0
        self.display.trial_started(record.number, record.params, epochs, first_epoch=first, note=note)

    def trial_epoch(self, number: int, report: EpochReport) -> None:
        self.tracker.trial_epoch(number, report.epoch, report.metrics)
        self.display.epoch(number, report.epoch, report.metrics.get(self.objective.metric))

    def trial_finished(self, record: TrialRecord) -> TrialRecord:
        keep_best = self.plan.settings.delete_intermediate_ckpt and not self.terminal
        if keep_best and self.plan.space is not None and record.folder:
            keep_only_best_checkpoint(Path(record.folder) / self.plan.action, record.best_epoch)
        self.summary.put(record)
        self.tracker.trial_finished(record.to_dict())
        self.display.trial_finished(record.number, record.state.value, record.value, record.error)
        return record

    # --- one run -----------------------------------------------------------------------------
    def run(self, backend: Backend, *, resume: bool = False) -> dict[str, Any]:
        """Open the backend (on ``resume`` it re-queues what an interrupted run left), run it, conclude."""
        backend.open(self, resume=resume)
        try:
            reason = backend.run(self)
            self.stop_reason = self.stop_reason or reason
        finally:
            backend.close()
        return self.conclude(backend)

    def total(self) -> int:
        return 1 if self.plan.space is None else self.plan.settings.max_recommendations

    def counted(self) -> list[TrialRecord]:
        return [t for t in self.trials() if t.counts]

    def run_ask_tell(self, backend: AskTellBackend) -> str | None:
        """Launch the backend's trials, ``concurrency`` at a time, until it has no more."""
        launched = len(self.counted())
        futures: set[Future] = set()
        concurrency = max(1, self.plan.concurrency)
        exhausted = False
        with ThreadPoolExecutor(max_workers=concurrency) as pool, _trials_stopped_on_ctrl_c():
            while True:
                while len(futures) < concurrency and not (self.stop_reason or exhausted):
                    if not backend.may_launch(launched, self.counted()):
                        break
                    if self.past_deadline():
                        self.stop_reason = "time budget used up"
                        break
                    with self.lock:
                        request = backend.ask(self.counted())
                    if request is None:
                        exhausted = True
                        break
                    futures.add(pool.submit(self.run_trial, backend, request))
                    launched += 1
                if not futures:
                    if not (self.stop_reason or exhausted):
                        self.stop_reason = backend.stop_reason(launched)
                    break
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    record = future.result()
                    if record.failure_class == "disk_full":  # every later trial would fail the same way
                        raise SweepWriteError(
                            f"trial {record.number}: {record.error}. {continue_hint(self.summary.folder)}"
                        )
                finished = self.counted()
                cause = shared_failure(finished)
                if cause and len(finished) >= min(self.total(), 3):
                    self.stop_reason = cause
        return self.stop_reason

    def run_trial(self, backend: AskTellBackend, request: TrialRequest) -> TrialRecord:
        """One trial of an ask/tell backend, from its folder to its final record."""
        plan, number = self.plan, request.number
        folder = plan.trial_folder(number)
        folder.mkdir(parents=True, exist_ok=True)
        out = plan.action
        resume = request.resume_folder
        if resume and (Path(resume) / out).is_dir() and not (folder / out).exists():
            shutil.copytree(Path(resume) / out, folder / out, symlinks=True)
        spec, epochs = self.trial_spec(request)
        clone = request.continues
        record = TrialRecord(
            number=number,
            params=request.params,
            folder=str(folder),
            started=time.time(),
            baseline=True if request.baseline else None,
            resumed_from=resume,
            parent=clone.parent if clone else None,
            generation=clone.generation if clone else None,
            resume_epoch=clone.resume_epoch if clone else None,
            **request.labels,
        )
        self.trial_started(record, epochs, clone)
        record = self.measured_latency(record, spec, folder)
        if record.state.finished:  # over the latency limit: recorded, never trained
            with self.lock:
                backend.tell(request, record)
            return self.trial_finished(record)
        devices = self.pool.acquire(self.gpus_per_trial)
        try:
            outcome = run_trial(
                folder,
                spec,
                on_epoch=lambda report: self._on_epoch(backend, request, report),
                objective=self.objective,
                devices=devices or None,
                timeout=plan.settings.timeout_per_trial,
                env=plan.trial_env,
                action=plan.action,
            )
        finally:
            self.pool.release(devices)
        record = self.finished_record(record, outcome)
        with self.lock:
            backend.tell(request, record)
        return self.trial_finished(record)

    def measured_latency(self, record: TrialRecord, spec: dict[str, Any], folder: Path) -> TrialRecord:
        """With ``--max-latency-ms`` or latency among ``--objectives``: the trial's network measured
        before it trains (once per
        architecture); one over the limit, or one that cannot be measured, ends PRUNED at once, with
        failure class ``infeasible`` and the measurement in its record. Optuna ranks such a trial
        below every trained one, so its sampler learns where the slow networks are."""
        if self.latency is None:
            return record
        started = time.monotonic()
        try:
            result, _ = self.latency.measure(spec, folder)
        except LatencyUnmeasured as exc:
            return record.updated(
                state=TrialState.PRUNED, failure_class=INFEASIBLE, error=f"{exc}; not trained", seconds=0.0
            )
        record = record.updated(latency_ms=float(result["latency_ms"]))
        reason = self.latency.verdict(result)
        if reason is None:
            return record
        seconds = round(time.monotonic() - started, 2)
        return record.updated(
            state=TrialState.PRUNED, failure_class=INFEASIBLE, error=reason, seconds=seconds
        )

    def trial_spec(self, request: TrialRequest) -> tuple[dict[str, Any], int]:
        """The spec a requested trial runs, and the epoch it trains to."""
        plan = self.plan
        spec = spec_for_params(
            plan.base_spec, request.params, plan.max_epochs, plan.multi_fidelity, self.terminal
        )
        clone = request.continues
        if clone is None:
            fitted = self.fitted_budget(request)
            if fitted is not None:  # the trainer fits its epochs and lr schedule to this deadline
                spec = set_dotted(spec, "train.time_budget", f"{fitted}s")
            return spec, plan.max_epochs
        # continue the parent's best checkpoint for a few epochs
        return continue_spec(spec, clone.checkpoint, clone.epochs), clone.epochs

    def fitted_budget(self, request: TrialRequest) -> int | None:
        """Seconds of ``train.time_budget`` for a trial of a search with ``time_budget``: all of it
        with ``--policy off`` (plain training fills the budget), and for the baseline trial its
        share: ``baseline_time_share`` of it, by default ``concurrency / automl_max_recommendations``;
        None for other trials, which the search's schedule and deadline stop."""
        plan, budget = self.plan, self.plan.settings.time_budget
        if not budget or plan.action not in ("train", "distill"):
            return None
        if plan.space is None:
            return max(1, int(budget))
        if request.baseline:
            fraction = plan.settings.baseline_time_share
            if fraction is None:
                fraction = plan.concurrency / max(1, plan.settings.max_recommendations)
            share = budget * fraction
            return max(1, int(min(share, budget)))
        return None

    def _on_epoch(self, backend: AskTellBackend, request: TrialRequest, report: EpochReport) -> bool:
        self.trial_epoch(request.number, report)
        value = report.metrics.get(self.objective.metric)
        if value is None:
            return False
        if self.past_deadline():
            self.over_time.add(request.number)  # stopped by the time budget; its best epoch still counts
            return True
        # the schedule sees each trial's best epoch so far: a trial is ranked by its best epoch, and a
        # one-epoch dip (common in DETR's first epochs) then does not prune a trial that was ahead
        best = self.objective.pick(self.best_so_far.get(request.number, float(value)), float(value))
        self.best_so_far[request.number] = best
        with self.lock:
            if backend.report(request, report.epoch, best):
                return True
        values = self.values.setdefault(request.number, [])
        values.append(float(value))
        if self.plateau is not None and self.plateau.stops(values):
            self.plateaued[request.number] = report.epoch
            return True
        return False

    def finished_record(self, record: TrialRecord, outcome: TrialOutcome) -> TrialRecord:
        state, reason, failure_class = TrialState(outcome.state), outcome.reason, outcome.failure_class
        if state == TrialState.PRUNED and record.number in self.over_time:
            reason = f"stopped at the time budget after epoch {outcome.last_epoch}"
        elif state == TrialState.PRUNED and record.number in self.plateaued and self.plateau is not None:
            reason = self.plateau.reason(self.plateaued[record.number])
        if state == TrialState.COMPLETE and outcome.best_value is None:
            state, failure_class = TrialState.FAIL, "no_metric"
            reason = f"training finished without a {self.objective.metric} value"
        last_value = outcome.history[-1].metrics.get(self.objective.metric) if outcome.history else None
        checkpoint = outcome.best_checkpoint
        if self.terminal and record.folder and outcome.last_epoch is not None:
            last = Path(record.folder) / self.plan.action / f"model_epoch_{outcome.last_epoch:03d}.pth"
            checkpoint = str(last) if last.is_file() else None
        return record.updated(
            state=state,
            value=outcome.best_value,
            best_epoch=outcome.best_epoch,
            last_epoch=outcome.last_epoch,
            last_value=last_value,
            checkpoint=checkpoint,
            seconds=round(outcome.seconds, 2),
            failure_class=failure_class,
            error=reason,
            log=outcome.log_path,
        )

    # --- the end -----------------------------------------------------------------------------
    def conclude(self, backend: Backend | None = None) -> dict[str, Any]:
        ledger = backend.ledger() if backend is not None else None
        if ledger is not None:  # a shared storage holds every process's trials: it is the record
            self.summary.replace_trials(ledger)
        trials = self.trials()
        best = best_trial(trials, multi_fidelity=self.plan.multi_fidelity, objective=self.objective)
        cause = self.stop_reason or shared_failure([t for t in trials if t.counts])
        if self.plan.settings.objectives:  # a multi-objective sweep: its Pareto front
            front = pareto_front(trials, self.objective)
            self.summary.set(pareto_front=front_entries(front, self.objective.metric))
        self.summary.set(
            status="FINISHED" if best is not None else "FAILED",
            best=BestTrial.of(best, self.objective.metric).to_dict() if best is not None else None,
            stopped_early=cause if self.stop_reason else None,
            failure=cause if best is None else None,
            finished=time.time(),
        )
        return self.summary.data
