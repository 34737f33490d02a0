"""An exact trial budget for a study that several processes share (``automl worker``).

Every process of such a sweep (the first one included) claims trials through :func:`claim_trial`:

1. Under the process's lock, count the study's trials (any state) that are not tagged
   ``over_budget`` and are not re-queued copies (``resume_folder``); at the budget, stop.
2. Otherwise ``ask``. Storages number trials densely in creation order, so the trial's rank among
   counted trials with a number up to its own is fixed: when it exceeds the budget (another process
   asked in between), the trial is tagged ``over_budget``, told FAIL without running, and the
   process stops. A trial below such a trial is never over budget, so exactly ``budget`` trials
   run; tagged ones (at most one per racing process) are left out of every view.

The storage is then the sweep's ledger: each process writes its trials' records into the study
(the ``record`` user attribute, at the start and before the tell), and :func:`storage_records`
reads every process's trials back.
"""

from __future__ import annotations

import optuna

from automl.results.trial_record import TrialRecord, TrialState

__all__ = ["OVER_BUDGET", "RECORD_ATTR", "claim_trial", "counted", "storage_records"]

OVER_BUDGET = "over_budget"
RECORD_ATTR = "record"


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that use the budget: not over budget, not a re-queued copy of an interrupted one."""
    return [t for t in trials if not t.user_attrs.get(OVER_BUDGET) and "resume_folder" not in t.user_attrs]


def claim_trial(study: optuna.Study, budget: int) -> optuna.Trial | None:
    """A new trial of the study, or None when the study holds its budget (the scheme above)."""
    trials = study.get_trials(deepcopy=False)
    waiting = any(t.state == optuna.trial.TrialState.WAITING for t in trials)
    if len(counted(trials)) >= budget and not waiting:
        return None
    trial = study.ask()
    if "resume_folder" in trial.user_attrs:  # replaces an interrupted trial that was counted
        return trial
    upto = [t for t in study.get_trials(deepcopy=False) if t.number <= trial.number]
    if len(counted(upto)) > budget:
        trial.set_user_attr(OVER_BUDGET, True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return None
    return trial


def storage_records(study: optuna.Study) -> list[TrialRecord]:
    """Every trial of the study as its record (over-budget ones left out). A trial whose process
    died keeps the state the storage gives it."""
    records = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(OVER_BUDGET):
            continue
        stored = t.user_attrs.get(RECORD_ATTR)
        record = TrialRecord.from_dict(stored) if stored else TrialRecord(t.number, params=dict(t.params))
        state = TrialState(t.state.name)
        if record.state != state and not (record.state == TrialState.FAIL and state == TrialState.FAIL):
            # the storage's state wins over a RUNNING record (a trial that finished, or was failed by
            # a heartbeat or a resume)
            record = record.updated(state=state)
        if record.value is None and t.state == optuna.trial.TrialState.COMPLETE and len(t.values or ()) == 1:
            record = record.updated(value=t.values[0])
        if t.user_attrs.get("baseline"):
            record = record.updated(baseline=True)
        records.append(record)
    return records
