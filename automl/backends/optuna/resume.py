"""``automl run --resume <sweep>`` after the orchestrator died (even by SIGKILL), on Optuna.

Finished trials are kept and not re-run; one that summary.json still shows RUNNING (the orchestrator
died, or its disk filled, between the study's tell and the summary's rewrite) gets the study's
record. Trials the study still shows RUNNING are told FAIL and
re-queued with the same parameters; the re-queued trial starts in a copy of the interrupted trial's
folder, so ``rtdetr train`` resumes from its last checkpoint (a PBT clone starts again from its
parent's checkpoint). The sweep then runs until the same total.
"""

from __future__ import annotations

import optuna

from automl.backends.base import SweepHooks
from automl.backends.optuna.pbt import ATTR as PBT_ATTR
from automl.backends.optuna.shared_budget import RECORD_ATTR, storage_records
from automl.results.trial_record import TrialRecord, TrialState

__all__ = ["record_finished", "requeue_interrupted"]

REQUEUED = "interrupted when the orchestrator stopped; re-queued with the same parameters"


def record_finished(study: optuna.Study, hooks: SweepHooks) -> list[int]:
    """Put the study's record of each finished trial that summary.json lacks or shows RUNNING."""
    records = {t.number: t for t in hooks.trials()}
    recorded = []
    for stored in storage_records(study):
        old = records.get(stored.number)
        if stored.state.finished and (old is None or old.state == TrialState.RUNNING):
            hooks.trial_updated(stored)
            recorded.append(stored.number)
    return recorded


def requeue_interrupted(study: optuna.Study, hooks: SweepHooks) -> list[int]:
    requeued: list[int] = []
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    records = {t.number: t for t in hooks.trials()}
    for trial in running:
        old = records.get(trial.number) or TrialRecord(trial.number)
        folder = old.folder or str(hooks.plan.trial_folder(trial.number))
        record = old.updated(
            state=TrialState.FAIL, requeued=True, failure_class="killed", error=REQUEUED, folder=folder
        )
        # a shared storage is the ledger: the record goes in before the tell freezes the trial
        study._storage.set_trial_user_attr(trial._trial_id, RECORD_ATTR, record.to_dict())
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        kept = {k: trial.user_attrs[k] for k in (PBT_ATTR,) if k in trial.user_attrs}  # a PBT clone stays one
        study.enqueue_trial(dict(trial.params), user_attrs={"resume_folder": folder, **kept})
        hooks.trial_updated(record)
        requeued.append(trial.number)
    return requeued
