"""What ``automl status`` and ``automl best`` show: a sweep folder's ``summary.json`` or, for a sweep
on a shared study storage, the storage's trials (the ledger every process writes) and the best of
them. A storage that cannot be read falls back to the folder's file, with a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from automl.errors import SettingError
from automl.results.objective import Objective
from automl.results.selection import best_trial
from automl.results.summary import SUMMARY, read_summary
from automl.results.trial_record import BestTrial, TrialState

__all__ = ["load_shared_study", "sweep_view"]


def load_shared_study(storage_url: str, name: str, folder: Path) -> Any:
    import optuna

    from automl.backends.optuna.study import make_storage

    storage = make_storage(storage_url, folder)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise SettingError(
            f"--study: no study named {name!r} in {storage_url}; start the sweep with "
            f"`automl run --storage {storage_url} --name {name} ...`"
        ) from None


def sweep_view(sweep: str | Path) -> dict[str, Any]:
    folder = Path(sweep)
    data = read_summary(folder)
    config = data.get("config") or {}
    if not config.get("storage") or data.get("backend") != "optuna":
        return data
    from automl.backends.optuna.shared_budget import storage_records

    try:
        records = storage_records(load_shared_study(config["storage"], config["study"], folder))
    except Exception as exc:  # a storage that is down: show what this folder knows
        print(
            f"warning: could not read the study from {config['storage']} ({exc}); showing {folder}/{SUMMARY}"
        )
        return data
    settings = data.get("settings") or {}
    objective = Objective(settings.get("metric", "val_mAP50"), settings.get("direction", "maximize"))
    best = best_trial(
        records, multi_fidelity=settings.get("fidelity") in ("hyperband", "asha"), objective=objective
    )
    running = any(r.state in (TrialState.RUNNING, TrialState.WAITING) for r in records)
    return {
        **data,
        "trials": [r.to_dict() for r in records],
        "best": BestTrial.of(best, objective.metric).to_dict() if best is not None else None,
        "status": "RUNNING" if running else ("FINISHED" if best else data.get("status")),
    }
