"""``automl run --resume <sweep>`` after the orchestrator died (even by SIGKILL).

Finished trials are kept and not re-run. Trials the store still shows RUNNING are marked failed and
re-queued with the same parameters; the re-queued trial starts in a copy of the interrupted trial's
folder, so ``rtdetr train`` resumes from its last checkpoint (a PBT clone starts again from its
parent's checkpoint). The sweep then runs until the same total.
"""

from __future__ import annotations

import optuna

from automl.backends.optuna_pbt import ATTR as PBT_ATTR
from automl.summary import SweepRecord


def requeue_interrupted(study: optuna.Study, record: SweepRecord) -> list[int]:
    requeued: list[int] = []
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    folders = {t["number"]: t.get("folder") for t in record.trials()}
    for trial in running:
        folder = folders.get(trial.number) or str(record.folder / "trials" / f"{trial.number:04d}")
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        kept = {k: trial.user_attrs[k] for k in (PBT_ATTR,) if k in trial.user_attrs}  # a PBT clone stays one
        study.enqueue_trial(dict(trial.params), user_attrs={"resume_folder": folder, **kept})
        record.upsert_trial({
            "number": trial.number, "state": "FAIL", "requeued": True, "failure_class": "killed",
            "error": "interrupted when the orchestrator stopped; re-queued with the same parameters",
            "folder": folder, "params": next((t.get("params") for t in record.trials() if t["number"] == trial.number), {}),
        })  # fmt: skip
        requeued.append(trial.number)
    # summary entries left RUNNING without a store entry (plain training) are marked too
    for entry in record.trials():
        if entry.get("state") == "RUNNING" and entry["number"] not in requeued:
            record.upsert_trial({**entry, "state": "FAIL", "requeued": True, "failure_class": "killed",
                                 "error": "interrupted when the orchestrator stopped"})  # fmt: skip
    return requeued
