"""One sweep: ask the backend for parameters, run each trial as a real training process, tell results.

Trials run concurrently (one thread per running trial): on GPUs each trial gets ``train.num_gpus``
devices of its own, on a CPU machine ``concurrency`` slots. A pruned trial's processes stop; a trial
that keeps going keeps training in the same process. ``summary.json`` is rewritten after every event.
If every trial fails, the sweep stops early and reports the shared cause.
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from automl.action_profiles import apply_combination
from automl.backends.optuna_pbt import Population, clone_of
from automl.display import SweepDisplay
from automl.gpu_pool import GpuPool
from automl.launcher import EpochReport, TrialOutcome, run_trial
from automl.sampling import sample_params
from automl.search_param import SearchSpace
from automl.selection import best_trial, keep_only_best_checkpoint, shared_failure
from automl.settings import AutomlSettings
from automl.space import apply_params
from automl.spec import get_dotted, set_dotted
from automl.summary import SweepRecord
from automl.tracking import NullTracker

FINISHED = ("COMPLETE", "PRUNED", "FAIL")


@dataclass
class SweepPlan:
    folder: Path
    base_spec: dict[str, Any]
    space: SearchSpace | None  # None: plain training (policy off)
    settings: AutomlSettings
    max_epochs: int
    concurrency: int
    devices: list[int] | None = None
    study: optuna.Study | None = None
    trial_env: dict[str, str] = field(default_factory=dict)
    tracker: Any = field(default_factory=NullTracker)  # automl.tracking.Tracker when tracking is on
    action: str = "train"  # what each trial runs: train | distill | quantize (automl.action_profiles)

    @property
    def multi_fidelity(self) -> bool:
        return self.space is not None and self.settings.fidelity in ("hyperband", "asha")


def continue_from(spec: dict[str, Any], clone: Any) -> dict[str, Any]:
    """A PBT clone's spec: resume the parent's checkpoint, validate and save every epoch."""
    spec = set_dotted(spec, "train.resume_training_checkpoint_path", clone.checkpoint)
    spec = set_dotted(spec, "train.num_epochs", clone.epochs)
    spec = set_dotted(spec, "train.validation_interval", 1)
    return set_dotted(spec, "train.checkpoint_interval", 1)


def trial_spec(
    base: dict[str, Any], params: dict[str, Any], max_epochs: int, validate_every_epoch: bool
) -> dict[str, Any]:
    base, params = apply_combination(base, params)  # a sampled quantize.combination row
    spec = apply_params(base, params)
    spec = set_dotted(spec, "train.num_epochs", max_epochs)
    if validate_every_epoch or int(get_dotted(spec, "train.validation_interval", 1)) > max_epochs:
        spec = set_dotted(spec, "train.validation_interval", 1)
    if int(get_dotted(spec, "train.checkpoint_interval", 1)) > max_epochs:
        spec = set_dotted(spec, "train.checkpoint_interval", max_epochs)
    spec = set_dotted(spec, "train.resume_training_checkpoint_path", "")
    return spec


class Sweep:
    def __init__(self, plan: SweepPlan, record: SweepRecord, display: SweepDisplay):
        self.plan = plan
        self.record = record
        self.display = display
        self.lock = threading.Lock()
        self.stop_reason: str | None = None
        num_gpus = int(get_dotted(plan.base_spec, "train.num_gpus", 1) or 1)
        self.gpus_per_trial = num_gpus
        self.pool = GpuPool(plan.devices, concurrency=plan.concurrency)
        budget = plan.settings.time_budget if plan.space is not None else None
        self.deadline = time.monotonic() + budget if budget else None
        self.over_time: set[int] = set()
        self.best_so_far: dict[int, float] = {}
        # automl_algorithm=pbt: founders, then clones of the best (automl/backends/optuna_pbt.py)
        self.population: Population | None = None
        if plan.study is not None and plan.space is not None and plan.settings.algorithm == "pbt":
            self.population = Population(plan.space, plan.settings, seed=plan.settings.seed)

    def past_deadline(self) -> bool:
        """The search's time budget (``time_budget``, counted from this run's start) is used up."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    # --- counting -----------------------------------------------------------------------------
    def _finished(self) -> list[dict[str, Any]]:
        return [t for t in self.record.trials() if t.get("state") in FINISHED and not t.get("requeued")]

    def total(self) -> int:
        return 1 if self.plan.space is None else self.plan.settings.max_recommendations

    # --- one trial ----------------------------------------------------------------------------
    def _ask(self) -> tuple[int, dict[str, Any], Any, str | None]:
        if self.plan.study is None:
            trials = self.record.trials()
            resumed = {t.get("resumed_from") for t in trials}
            pending = [t["folder"] for t in trials if t.get("requeued") and t.get("folder") not in resumed]
            return len(trials), {}, None, (pending[0] if pending else None)
        with self.lock:
            if self.population is not None and self.population.founders_launched(self.plan.study):
                self.population.enqueue_clone(self.plan.study, self._finished())
            trial = self.plan.study.ask()
        assert self.plan.space is not None  # internal invariant: a study always comes with a space
        params = sample_params(self.plan.space, trial)
        return trial.number, params, trial, trial.user_attrs.get("resume_folder")

    def run_one(self) -> dict[str, Any]:
        number, params, trial, resume_from = self._ask()
        folder = self.plan.folder / "trials" / f"{number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        out = self.plan.action
        if resume_from and (Path(resume_from) / out).is_dir() and not (folder / out).exists():
            shutil.copytree(Path(resume_from) / out, folder / out, symlinks=True)
        spec = trial_spec(self.plan.base_spec, params, self.plan.max_epochs, self.plan.multi_fidelity)
        entry = {
            "number": number,
            "state": "RUNNING",
            "params": params,
            "folder": str(folder),
            "started": time.time(),
        }
        if resume_from:
            entry["resumed_from"] = resume_from
        epochs = self.plan.max_epochs
        clone = clone_of(trial) if self.population is not None else None
        if clone is not None:  # PBT: continue the parent's best checkpoint for eval_interval epochs
            spec = continue_from(spec, clone)
            epochs = clone.epochs
            entry.update(parent=clone.parent, generation=clone.generation, resume_epoch=clone.resume_epoch)
        self.record.upsert_trial(entry)
        self.plan.tracker.trial_started(number, params, folder)
        if clone is not None:
            note = f"continues trial {clone.parent} from epoch {clone.resume_epoch}"
            self.display.trial_started(number, params, epochs, first_epoch=clone.resume_epoch, note=note)
        else:
            self.display.trial_started(number, params, epochs)
        devices = self.pool.acquire(self.gpus_per_trial)
        try:
            outcome = run_trial(
                folder, spec, on_epoch=lambda report: self._on_epoch(number, trial, report),
                metric=self.plan.settings.metric, devices=devices or None,
                timeout=self.plan.settings.timeout_per_trial, env=self.plan.trial_env, action=self.plan.action,
            )  # fmt: skip
        finally:
            self.pool.release(devices)
        return self._finish(number, trial, outcome, entry)

    def _on_epoch(self, number: int, trial: Any, report: EpochReport) -> bool:
        value = report.metrics.get(self.plan.settings.metric)
        self.plan.tracker.trial_epoch(number, report.epoch, report.metrics)
        self.display.epoch(number, report.epoch, value)
        if trial is None or value is None:
            return False
        if self.past_deadline():
            self.over_time.add(number)  # stopped by the time budget; its best epoch still counts
            return True
        # the schedule sees each trial's best epoch so far: a trial is ranked by its best epoch, and a
        # one-epoch dip (common in DETR's first epochs) then does not prune a trial that was ahead
        pick = max if self.plan.settings.direction == "maximize" else min
        best = pick(float(value), self.best_so_far.get(number, float(value)))
        self.best_so_far[number] = best
        with self.lock:
            trial.report(best, step=report.epoch)
            if self.plan.settings.fidelity == "none":
                return False
            return bool(trial.should_prune())

    def _finish(
        self, number: int, trial: Any, outcome: TrialOutcome, entry: dict[str, Any]
    ) -> dict[str, Any]:
        state = outcome.state
        if state == "PRUNED" and number in self.over_time:
            outcome.reason = f"stopped at the time budget after epoch {outcome.last_epoch}"
        if state == "COMPLETE" and outcome.best_value is None:
            state, outcome.failure_class = "FAIL", "no_metric"
            outcome.reason = f"training finished without a {self.plan.settings.metric} value"
        if trial is not None:
            with self.lock:
                if state == "COMPLETE":
                    self.plan.study.tell(trial, outcome.best_value)
                elif state == "PRUNED":
                    self.plan.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    self.plan.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        done = {
            **entry,
            "state": state,
            "value": outcome.best_value,
            "best_epoch": outcome.best_epoch,
            "last_epoch": outcome.last_epoch,
            "last_value": outcome.history[-1].metrics.get(self.plan.settings.metric)
            if outcome.history
            else None,
            "checkpoint": outcome.best_checkpoint,
            "seconds": round(outcome.seconds, 2),
            "failure_class": outcome.failure_class,
            "error": outcome.reason,
            "log": outcome.log_path,
        }
        if self.plan.settings.delete_intermediate_ckpt and self.plan.space is not None:
            keep_only_best_checkpoint(Path(entry["folder"]) / self.plan.action, outcome.best_epoch)
        self.record.upsert_trial(done)
        self.plan.tracker.trial_finished(done)
        self.display.trial_finished(number, state, outcome.best_value, outcome.reason)
        return done

    # --- the loop -----------------------------------------------------------------------------
    def may_launch(self, launched: int) -> bool:
        """Whether another trial may start, ``launched`` having started in this run (with the
        trials already finished before it). ``automl worker`` processes count the shared study.
        PBT: once the founders are launched, a clone needs a finished trial to continue from."""
        if launched >= self.total():
            return False
        if self.population is not None and self.population.founders_launched(self.plan.study):
            return bool(self.population.parents(self._finished()))
        return True

    def run(self) -> dict[str, Any]:
        total = self.total()
        launched = len(self._finished())
        futures: set[Future] = set()
        concurrency = max(1, self.plan.concurrency)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while True:
                while self.may_launch(launched) and len(futures) < concurrency and not self.stop_reason:
                    if self.past_deadline():
                        self.stop_reason = "time budget used up"
                        break
                    futures.add(pool.submit(self.run_one))
                    launched += 1
                if not futures:
                    if self.population is not None and launched < total and not self.stop_reason:
                        self.stop_reason = (
                            "pbt: no finished trial left to continue from (none left a checkpoint, "
                            "or every lineage has automl_max_generations generations)"
                        )
                    break
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
                finished = self._finished()
                cause = shared_failure(finished)
                if cause and len(finished) >= min(total, 3):
                    self.stop_reason = cause
        return self.conclude()

    def conclude(self) -> dict[str, Any]:
        trials = self.record.trials()
        best = best_trial(
            trials,
            multi_fidelity=self.plan.multi_fidelity,
            maximize=self.plan.settings.direction == "maximize",
        )
        status = "FINISHED" if best is not None else "FAILED"
        cause = self.stop_reason or shared_failure(self._finished())
        summary_best = None
        if best is not None:
            summary_best = {
                "trial": best["number"],
                "params": best.get("params", {}),
                "value": best["value"],
                "metric": self.plan.settings.metric,
                "best_epoch": best.get("best_epoch"),
                "last_value": best.get("last_value"),
                "checkpoint": best.get("checkpoint"),
                "folder": best.get("folder"),
            }
        self.record.set(status=status, best=summary_best, stopped_early=cause if self.stop_reason else None,
                        failure=cause if best is None else None, finished=time.time())  # fmt: skip
        return self.record.data
