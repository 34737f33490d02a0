"""``automl worker``: join a sweep from another process or machine through its Optuna storage.

``automl run --storage URL`` stores what a worker needs in the study (base spec, settings, parameter
ranges, schema, max_epochs, sweep folder, tracking URI), so ``automl worker --storage URL --study
NAME`` needs nothing else. Every process of the sweep (the first one included) runs the same loop on
the Optuna backend with the study's exact shared budget (:mod:`automl.backends.optuna.shared_budget`)
until the study holds ``automl_max_recommendations`` trials. Each process writes its trials' records
into the storage, so ``automl status``/``automl best`` list every trial once, with one best, from any
process's folder (:mod:`automl.sweep.view`).
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Any

from automl.errors import AutomlError, SettingError
from automl.results.summary import SUMMARY, write_json_atomic
from automl.tracking.protocol import SweepTracker

__all__ = ["run_worker"]


def _worker_folder(results_dir: str | None, definition: dict[str, Any], study: str) -> Path:
    if results_dir:
        return Path(results_dir)
    shared = Path(definition.get("folder") or "")
    if definition.get("folder") and (shared / SUMMARY).is_file():
        return shared  # the sweep folder is on a disk this machine shares
    return Path("results") / study


def _tracker(definition: dict[str, Any], folder: Path) -> SweepTracker:
    from automl.tracking.tracker import DEFAULT_EXPERIMENT, NullTracker, Tracker

    uri = str(definition.get("tracking_uri") or "")
    if not definition.get("track", True):
        return NullTracker()
    if uri.startswith(("http://", "https://")):
        return Tracker.open(uri, definition.get("experiment") or DEFAULT_EXPERIMENT, folder)
    print(
        "note: no MLflow tracking from this worker: the sweep tracks to a local store of the first "
        "process (one writer per store); start the sweep with --tracking-uri http://HOST:5000 to track "
        f"every worker, or run `automl sync {folder}` there later",
        flush=True,
    )
    return NullTracker()


def run_worker(
    storage_url: str, study_name: str, results_dir: str | None = None, concurrency: int | None = None
) -> int:
    from automl.backends.base import SweepPlan
    from automl.backends.optuna.backend import OptunaBackend, worker_id
    from automl.backends.optuna.study import DEFINITION_ATTR
    from automl.commands.sweep_inputs import concurrency as default_concurrency
    from automl.commands.sweep_inputs import make_space
    from automl.launch.devices import visible_gpus
    from automl.launch.rendezvous import rendezvous_env
    from automl.project_files import schema_file
    from automl.results.summary import SweepSummary
    from automl.settings.tao_settings import parse_settings
    from automl.sweep.display import SweepDisplay
    from automl.sweep.loop import SweepLoop
    from automl.sweep.view import load_shared_study

    if results_dir:
        from automl.commands.sweep_folder import check_sweep_location

        check_sweep_location(results_dir, None)  # a folder (or to be made), before the storage is opened
    probe = load_shared_study(storage_url, study_name, Path.cwd())
    definition = probe.user_attrs.get(DEFINITION_ATTR)
    if not definition:
        raise AutomlError(
            f"study {study_name!r} in {storage_url} holds no sweep definition; workers join "
            f"sweeps started with `automl run --storage {storage_url} ...`"
        )
    settings = parse_settings(definition["setting_pairs"])
    if settings.algorithm == "pbt":
        raise SettingError(
            f"study {study_name!r} searches with automl_algorithm=pbt, whose clones continue "
            f"checkpoints in the sweep's own folder: run it in one `automl run` (with "
            f"--concurrency), or use --backend ray for a population across machines"
        )
    me = worker_id()
    if settings.seed is not None:  # the same seed would sample the same start-up trials as the others
        settings = dataclasses.replace(settings, seed=(settings.seed + zlib.crc32(me.encode())) % 2**31)
    base, max_epochs = definition["base_spec"], int(definition["max_epochs"])
    action = definition.get("action", "train")  # what each trial runs: train, distill, quantize
    schema = Path(definition["schema"])
    if not schema.is_file():  # another machine: this installation's schema
        schema = schema_file(action)
    space = make_space(schema, base, settings, definition.get("param_ranges") or {}, action)
    folder = _worker_folder(results_dir, definition, study_name).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    summary_data: dict[str, Any] = {
        "name": study_name,
        "status": "RUNNING",
        "backend": "optuna",
        "worker": me,
        "policy": {"decision": "auto", "reason": f"worker of sweep {study_name}", "message": None},
        "algorithm": {
            "sampler": settings.algorithm,
            "fidelity": settings.fidelity,
            "name": settings.algorithm_name,
        },
        "settings": dataclasses.asdict(settings),
        "config": {**definition, "storage": storage_url, "study": study_name},
        "space": space.as_dict(),
        "max_epochs": max_epochs,
        "trials": [],
        "best": None,
        "pipeline": {},
    }
    if not (folder / SUMMARY).exists():  # lets `automl status <folder>` find the storage on this machine
        write_json_atomic(folder / SUMMARY, summary_data)
    summary = SweepSummary(folder, summary_data)
    summary.path = folder / f"worker-{me}.json"
    summary.save()
    gpus = visible_gpus()
    tracker = _tracker(definition, folder)
    tracker.start_sweep(summary.data)
    plan = SweepPlan(
        folder=folder,
        base_spec=base,
        space=space,
        settings=settings,
        max_epochs=max_epochs,
        concurrency=concurrency or default_concurrency(settings, base, gpus),
        devices=gpus or None,
        trial_env=rendezvous_env(base),
        action=action,
        storage=storage_url,
        study=study_name,
    )
    print(f"worker {me}: sweep {study_name} on {storage_url}; trial folders in {folder}", flush=True)
    with SweepDisplay(settings.metric, maximize=plan.objective.maximize) as display:
        data = SweepLoop(plan, summary, display, tracker).run(OptunaBackend(plan, join=True))
    tracker.finish_sweep(data)
    mine = [t for t in data["trials"] if t.get("worker") == me]
    print(
        f"worker {me}: ran {len(mine)} trial(s); the study holds its budget of {settings.max_recommendations}",
        flush=True,
    )
    best = data.get("best")
    if best:
        print(
            f"best so far: trial {best['trial']} {best['metric']}={best['value']:.4f} {best['checkpoint']}",
            flush=True,
        )
    return 0
