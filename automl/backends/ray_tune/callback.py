"""The driver side of a Ray sweep's bookkeeping: Tune's trial events -> summary.json, MLflow, display.

The driver stays the only writer of ``summary.json`` and MLflow: :class:`SweepCallback` (a Tune
``Callback``) turns trial events into the same ``SweepSummary`` entries, tracker calls and display
lines as the Optuna backend, plus where each trial ran (``node_id``, ``node_ip``, ``hostname``).
:func:`trial_name` numbers the trials (``trial_<nnnn>``; the trainable runs in
``<sweep>/trials/<nnnn>/``). Tune pickles both with the experiment (for ``Tuner.restore``), so they
hold no state: they find the running sweep through :func:`attach`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ray.tune import Callback

from automl.backends.base import SweepHooks, SweepPlan
from automl.backends.plateau import plateau_rule
from automl.backends.ray_tune.trainable import decode_params, read_outcome, trial_number
from automl.launch.status_tail import EpochReport
from automl.results.trial_record import TrialRecord, TrialState

__all__ = [
    "SweepCallback",
    "attach",
    "detach",
    "scheduler_name",
    "stopped_at_deadline",
    "trial_dirname",
    "trial_name",
    "uses_bohb",
]


class _Driver:
    def __init__(self, hooks: SweepHooks):
        self.hooks = hooks
        self.plan = hooks.plan
        assert hooks.plan.space is not None  # internal invariant: the Ray backend only runs searches
        self.space = hooks.plan.space
        self.lock = threading.Lock()
        self.started: set[int] = set()
        self.epochs: dict[int, list[tuple[int, float, str]]] = {}  # number -> [(epoch, value, ckpt)]
        self.since: dict[int, float] = {}
        self.done: set[int] = set()


_DRIVER: _Driver | None = None


def attach(hooks: SweepHooks) -> None:
    global _DRIVER
    _DRIVER = _Driver(hooks)


def detach() -> None:
    global _DRIVER
    _DRIVER = None


def _driver() -> _Driver:
    if _DRIVER is None:
        raise RuntimeError("the Ray sweep's driver state is not set up")
    return _DRIVER


def past_deadline() -> bool:
    """The sweep's time budget is used up (False when no sweep is attached)."""
    return _DRIVER is not None and _DRIVER.hooks.past_deadline()


def every_started_trial_reported() -> bool:
    """Some trial started, and every one that did has a validation or has finished: ending the
    experiment now loses none (as the Optuna loop, the budget never stops the first trials before
    their first validation)."""
    driver = _DRIVER
    if driver is None:
        return True
    with driver.lock:
        return bool(driver.started) and all(n in driver.done or driver.epochs.get(n) for n in driver.started)


def _result(
    number: int, folder: Any, objective: Any, history: list[tuple[int, float, str]]
) -> dict[str, Any]:
    """The best and last epochs of a trial: from its status.json (every run of the folder, as the
    launcher and the trainable's checkpoint pruning see them), else from the reported history."""
    from automl.launch.status_tail import epoch_report, every_run_lines

    metric = objective.metric
    lines = every_run_lines(folder / "train" / "status.json")
    reports = [r for r in (epoch_report(line, metric) for line in lines) if r]
    epochs = {r.epoch: r.metrics[metric] for r in reports} or {e: v for e, v, _ in history}
    if not epochs:
        return {"value": None, "best_epoch": None, "last_epoch": None, "last_value": None, "checkpoint": None}
    best = objective.best(sorted(epochs), lambda e: epochs[e])
    last = max(epochs)
    checkpoint = folder / "train" / f"model_epoch_{best:03d}.pth" if best is not None else None
    return {
        "value": epochs[best] if best is not None else None,
        "best_epoch": best,
        "last_epoch": last,
        "last_value": epochs[last],
        "checkpoint": str(checkpoint) if checkpoint is not None and checkpoint.is_file() else None,
    }


def stopped_at_deadline(hooks: SweepHooks, record: TrialRecord) -> TrialRecord:
    """A trial the experiment's end stopped at the time budget: PRUNED with its best epoch."""
    folder = hooks.plan.trial_folder(record.number)
    result = _result(record.number, folder, hooks.plan.objective, [])
    reason = f"stopped at the time budget after epoch {result['last_epoch']}"
    return hooks.trial_finished(record.updated(state=TrialState.PRUNED, error=reason, **result))


def trial_name(trial: Any) -> str:
    """Tune's ``trial_name_creator``: the next free trial number of the sweep (reserved by mkdir)."""
    driver = _driver()
    trials = driver.plan.folder / "trials"
    trials.mkdir(parents=True, exist_ok=True)
    with driver.lock:
        used = [int(p.name) for p in trials.iterdir() if p.name.isdigit()]
        used += [t.number for t in driver.hooks.trials()]
        number = max(used, default=-1) + 1
        (trials / f"{number:04d}").mkdir()
    return f"trial_{number:04d}"


def trial_dirname(trial: Any) -> str:
    """Tune's ``trial_dirname_creator``: the name :func:`trial_name` gave the trial."""
    return getattr(trial, "custom_trial_name", None) or str(trial.trial_id)


class SweepCallback(Callback):
    """Trial events -> summary.json entries, MLflow (the Tracker) and the display."""

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        driver = _driver()
        number = trial_number(trial.custom_trial_name)
        params = decode_params(driver.space, trial.config)
        folder = driver.plan.trial_folder(number)
        with driver.lock:
            first = number not in driver.started
            driver.started.add(number)
            driver.since.setdefault(number, time.time())
        old = next((t for t in driver.hooks.trials() if t.number == number), None)
        record = (old or TrialRecord(number, started=time.time())).updated(
            state=TrialState.RUNNING, params=params, folder=str(folder), ray_trial_id=trial.trial_id
        )
        if first:
            driver.hooks.trial_started(record, driver.plan.max_epochs)
        else:  # a paused or restored trial runs again
            driver.hooks.trial_updated(record)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        driver = _driver()
        metric = driver.plan.settings.metric
        if metric not in result or "epoch" not in result:
            return
        number = trial_number(trial.custom_trial_name)
        epoch, value = int(result["epoch"]), float(result[metric])
        with driver.lock:
            history = [h for h in driver.epochs.get(number, []) if h[0] != epoch]
            driver.epochs[number] = sorted([*history, (epoch, value, result.get("checkpoint_path") or "")])
        metrics = {
            k: float(v)
            for k, v in result.items()
            if isinstance(v, (int, float))
            and not isinstance(v, bool)
            and (k.startswith(("val_", "train_")) or k in (metric, "seconds"))
        }
        driver.hooks.trial_epoch(number, EpochReport(epoch, metrics))
        old = next((t for t in driver.hooks.trials() if t.number == number), None) or TrialRecord(number)
        driver.hooks.trial_updated(
            old.updated(
                params=decode_params(driver.space, trial.config),
                last_epoch=epoch,
                last_value=value,
                **_where(result),
            )
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        driver = _driver()
        number = trial_number(trial.custom_trial_name)
        reached = max((e for e, _, _ in driver.epochs.get(number, [])), default=-1) + 1
        state = TrialState.COMPLETE if reached >= driver.plan.max_epochs else TrialState.PRUNED
        reason = None
        if state == TrialState.PRUNED:
            values = [v for _, v, _ in driver.epochs.get(number, [])]
            rule = plateau_rule(driver.plan.settings)
            if driver.hooks.past_deadline():
                reason = f"stopped at the time budget after epoch {reached - 1}"
            elif rule is not None and rule.stops(values):
                reason = rule.reason(reached - 1)
            else:
                reason = f"stopped by the {scheduler_name(driver.plan)} scheduler after epoch {reached - 1}"
        self._finish(number, trial, state, None, reason)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        driver = _driver()
        number = trial_number(trial.custom_trial_name)
        folder = driver.plan.trial_folder(number)
        outcome = read_outcome(folder) or {}
        failure_class, reason = outcome.get("failure_class"), outcome.get("reason")
        if outcome.get("state") == TrialState.COMPLETE.value:  # finished without a metric
            failure_class, reason = (
                "no_metric",
                f"training finished without a {driver.plan.settings.metric} value",
            )
        if not reason:
            failure_class, reason = "error", _error_text(trial)
        self._finish(number, trial, TrialState.FAIL, failure_class, reason)

    def _finish(
        self, number: int, trial: Any, state: TrialState, failure_class: str | None, reason: str | None
    ) -> None:
        driver = _driver()
        folder = driver.plan.trial_folder(number)
        history = driver.epochs.get(number, [])
        result = _result(number, folder, driver.plan.objective, history)
        outcome = read_outcome(folder) or {}
        seconds = outcome.get("seconds") if state != TrialState.PRUNED else None
        if seconds is None:
            seconds = time.time() - driver.since.get(number, time.time())
        old = next((t for t in driver.hooks.trials() if t.number == number), None) or TrialRecord(number)
        done = old.updated(
            state=state,
            params=decode_params(driver.space, trial.config),
            folder=str(folder),
            seconds=round(float(seconds), 2),
            failure_class=failure_class,
            error=reason,
            log=str(folder / "trial.log"),
            **_where(trial.last_result or {}),
            **result,
        )
        if state == TrialState.FAIL and failure_class == "no_metric":
            done = done.updated(value=None)
        if driver.plan.settings.checkpoint_retention_strategy == "terminal" and done.last_epoch is not None:
            last = folder / "train" / f"model_epoch_{done.last_epoch:03d}.pth"  # only the last epoch is saved
            done = done.updated(checkpoint=str(last) if last.is_file() else None)
        with driver.lock:
            driver.done.add(number)
        driver.hooks.trial_finished(done)


def _where(result: dict) -> dict[str, Any]:
    out = {}
    for key, name in (("node_id", "node_id"), ("node_ip", "node_ip"), ("hostname", "hostname")):
        if result.get(key):
            out[name] = result[key]
    return out


def _error_text(trial: Any) -> str:
    try:
        error = trial.get_pickled_error() or trial.get_error()
    except Exception:
        error = None
    text = str(error or "the trial raised an error in its Ray worker").strip().splitlines()
    return (text[-1] if text else "error")[:500]


def uses_bohb(settings: Any) -> bool:
    return settings.algorithm_name == "bohb"


def scheduler_name(plan: SweepPlan) -> str:
    if uses_bohb(plan.settings):
        return "bohb"
    return "pbt" if plan.settings.algorithm == "pbt" else plan.settings.fidelity
