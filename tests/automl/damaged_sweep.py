"""A sweep folder as a killed ``automl run`` leaves it, made without training: a real Optuna journal
(written through the Optuna backend), ``summary.json`` as ``automl run`` writes it, and trial folders
with ``spec.yaml``, ``trial.log`` and TAO ``status.json`` lines. Trial 0 completed, trial 1 was
pruned after epoch 0, trial 2 was running (one epoch done) when the orchestrator died.

Shared by the reliability tests (damaged journal, damaged summary.json, the study rebuild)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import yaml

from automl.backends.base import SweepPlan
from automl.backends.optuna.backend import OptunaBackend
from automl.commands.sweep_inputs import make_space
from automl.results.summary import SweepSummary
from automl.results.trial_record import TrialRecord, TrialState
from automl.settings.action_profiles import action_profile
from automl.settings.tao_settings import parse_setting_args, parse_settings
from automl.spec import set_dotted
from automl.sweep.loop import SweepLoop

SETTINGS = [
    "automl_max_recommendations=4",
    "automl_algorithm=random",
    "automl_hyperparameters=[train.optim.lr]",
]
RANGES = {"train.optim.lr": "1e-5:1e-3:log"}
EPOCHS = 2
# trial -> (final state, val_mAP50 per finished epoch)
TRIALS: dict[int, tuple[TrialState, list[float]]] = {
    0: (TrialState.COMPLETE, [0.20, 0.30]),
    1: (TrialState.PRUNED, [0.05]),
    2: (TrialState.RUNNING, [0.25]),
}


def _status_line(epoch: int, value: float) -> dict[str, Any]:
    return {
        "status": "RUNNING",
        "message": f"Epoch {epoch} finished.",
        "epoch": epoch,
        "max_epoch": EPOCHS - 1,
        "time_per_epoch": "0:00:02",
        "kpi": {"train_loss": "3.0", "val_loss": f"{2.0 - value:.4f}", "val_mAP50": str(value)},
    }


def _write_trial_folder(folder: Path, spec: dict[str, Any], state: TrialState, values: list[float]) -> None:
    (folder / "train").mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "trial.log").write_text("rtdetr train\n")
    lines = [{"status": "STARTED", "message": "Starting train."}]
    lines += [_status_line(epoch, value) for epoch, value in enumerate(values)]
    best = max(range(len(values)), key=lambda e: values[e])
    for epoch in range(len(values)):
        (folder / "train" / f"model_epoch_{epoch:03d}.pth").write_bytes(b"checkpoint")
    if state == TrialState.COMPLETE:
        lines.append({"status": "SUCCESS", "message": "Train finished successfully.", "best_epoch": best})
    elif state == TrialState.PRUNED:
        lines.append({"status": "FAILURE", "message": "interrupted by SIGTERM at epoch 1 step 8"})
    (folder / "train" / "status.json").write_text("".join(json.dumps(line) + "\n" for line in lines))


def make_killed_sweep(folder: Path, base_spec: dict[str, Any], schema: Path) -> dict[str, Any]:
    """Write the sweep folder; returns its summary.json document."""
    folder.mkdir(parents=True)
    pairs = parse_setting_args(SETTINGS)
    settings = parse_settings(pairs)
    base = set_dotted(base_spec, "train.num_epochs", EPOCHS)
    space = make_space(schema, base, settings, RANGES)
    config = {
        "tracking_uri": None,
        "track": False,
        "experiment": "automl",
        "spec_path": "spec.yaml",
        "overrides": [],
        "base_spec": base,
        "setting_pairs": pairs,
        "param_ranges": RANGES,
        "schema": str(schema),
        "storage": None,
        "study": folder.name,
        "ray_address": None,
        "pipeline": False,
        "action": "train",
    }
    data = {
        "name": folder.name,
        "status": "RUNNING",
        "started": time.time(),
        "action": "train",
        "metric": {
            "name": "val_mAP50",
            "direction": "maximize",
            "description": action_profile("train").metric_description,
        },
        "policy": {"decision": "auto", "reason": "--policy auto", "message": None},
        "backend": "optuna",
        "algorithm": {
            "sampler": settings.algorithm,
            "fidelity": settings.fidelity,
            "name": settings.algorithm_name,
        },
        "settings": asdict(settings),
        "config": config,
        "space": space.as_dict(),
        "max_epochs": EPOCHS,
        "trials": [],
        "best": None,
        "pipeline": {},
    }
    summary = SweepSummary(folder, data)
    summary.save()
    definition = {**config, "max_epochs": EPOCHS, "folder": str(folder.resolve())}
    plan = SweepPlan(folder, base, space, settings, EPOCHS, 1, study=folder.name, definition=definition)
    display = SimpleNamespace(
        trial_finished=lambda *a: None, trial_started=lambda *a, **k: None, epoch=lambda *a: None
    )
    loop = SweepLoop(plan, summary, display)  # type: ignore[arg-type]
    backend = OptunaBackend(plan)
    backend.open(loop, resume=False)
    for number, (state, values) in TRIALS.items():
        request = backend.ask([])
        assert request is not None and request.number == number
        trial_folder = plan.trial_folder(number)
        spec = set_dotted(base, "train.optim.lr", request.params["train.optim.lr"])
        _write_trial_folder(trial_folder, spec, state, values)
        record = TrialRecord(number, params=request.params, folder=str(trial_folder), started=time.time())
        best = max(values)
        for epoch in range(len(values)):
            backend.report(request, epoch, max(values[: epoch + 1]))
        if state != TrialState.RUNNING:
            record = record.updated(
                state=state,
                value=best,
                best_epoch=values.index(best),
                last_epoch=len(values) - 1,
                last_value=values[-1],
                checkpoint=str(trial_folder / "train" / f"model_epoch_{values.index(best):03d}.pth"),
                seconds=3.0,
                error="pruned by the search after epoch 0" if state == TrialState.PRUNED else None,
                log=str(trial_folder / "trial.log"),
            )
            backend.tell(request, record)
        summary.put(record)
    return summary.data


def study_trials(folder: Path) -> list[optuna.trial.FrozenTrial]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    return optuna.load_study(study_name=folder.name, storage=storage).get_trials(deepcopy=False)
