"""``automl run``: from the command line to a finished sweep (or a plain training run).

Order: spec (``-e`` or the demo preset, whose synthetic dataset is generated when missing) -> policy
(``--policy``, ``--request``, the runnability gate) -> settings (TAO names) -> search space (from the
train schema) -> sweep folder -> backend (by name) -> the sweep loop -> best trial -> its pipeline.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from automl.backends import BACKENDS, make_backend
from automl.backends.base import SweepPlan
from automl.commands.sweep_inputs import (
    concurrency,
    demo_spec,
    make_space,
    param_ranges,
    settings_from_args,
    sweep_epochs,
)
from automl.errors import AutomlError, SettingError
from automl.launch.devices import visible_gpus
from automl.launch.rendezvous import rendezvous_env
from automl.project_files import schema_file
from automl.results.summary import SweepSummary, read_summary
from automl.settings.action_profiles import action_profile, check_action_settings
from automl.settings.policy import resolve_policy
from automl.settings.tao_settings import AutomlSettings, parse_settings
from automl.space.build import format_space_table
from automl.space.params import SearchSpace
from automl.spec import resolve_spec, set_dotted
from automl.sweep.display import SweepDisplay
from automl.sweep.loop import SweepLoop
from automl.tracking.tracker import DEFAULT_EXPERIMENT, Tracker

__all__ = ["execute", "resume", "start"]


def _sweep_folder(results_dir: str, name: str | None) -> Path:
    folder = Path(results_dir) / (name or time.strftime("sweep-%Y%m%d-%H%M%S"))
    if (folder / "summary.json").exists():
        raise AutomlError(
            f"{folder} already holds a sweep; continue it with `automl run --resume {folder}` "
            f"or choose another --name"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _metric_description(settings: AutomlSettings, action: str) -> str:
    profile = action_profile(action)
    return profile.metric_description if settings.metric == profile.metric else settings.metric


def start(args: Any) -> int:
    spec_path = Path(args.experiment_spec) if args.experiment_spec else demo_spec()
    decision = resolve_policy(args.policy, args.request)
    action = action_profile(getattr(args, "action", None)).action
    settings = parse_settings(settings_from_args(args))
    check_action_settings(settings, action)
    if decision.search and (settings.backend not in BACKENDS or settings.backend == "none"):
        names = " or ".join(n for n in BACKENDS if n != "none")
        raise SettingError(f"backend: {settings.backend!r} is not available; use {names}")
    ranges = param_ranges(args.param)
    base = resolve_spec(spec_path, args.overrides, action=action)
    max_epochs = sweep_epochs(settings, base)
    base = set_dotted(base, "train.num_epochs", max_epochs)  # the space sees the epochs trials will run
    schema_path = Path(args.schema) if args.schema else schema_file(action)
    space = make_space(schema_path, base, settings, ranges, action) if decision.search else None
    folder = _sweep_folder(args.results_dir, args.name)
    experiment = args.experiment or str(base.get("model_name") or "") or DEFAULT_EXPERIMENT
    config = {
        "tracking_uri": args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"),
        "track": not args.no_track,
        "experiment": experiment,
        "spec_path": str(spec_path),
        "overrides": list(args.overrides),
        "base_spec": base,
        "setting_pairs": settings_from_args(args),
        "param_ranges": ranges,
        "schema": str(schema_path),
        "storage": args.storage,
        "study": folder.name,
        "ray_address": getattr(args, "ray_address", None),
        # the best trial's evaluate / export / engine
        "pipeline": not getattr(args, "no_pipeline", False) and action == "train",
        "action": action,
    }
    summary = SweepSummary(
        folder,
        {
            "name": folder.name,
            "status": "RUNNING",
            "started": time.time(),
            "action": action,
            "metric": {
                "name": settings.metric,
                "direction": settings.direction,
                "description": _metric_description(settings, action),
            },
            "policy": {
                "decision": "auto" if decision.search else "off",
                "reason": decision.reason,
                "message": decision.message,
            },
            "backend": settings.backend if decision.search else "none",
            "algorithm": {
                "sampler": settings.algorithm,
                "fidelity": settings.fidelity,
                "name": settings.algorithm_name,
            }
            if decision.search
            else None,
            "settings": asdict(settings),
            "config": config,
            "space": space.as_dict() if space is not None else None,
            "max_epochs": max_epochs,
            "trials": [],
            "best": None,
            "pipeline": {},
        },
    )
    summary.save()
    print(f"AutoML: {'search' if decision.search else 'plain training'} ({decision.reason})", flush=True)
    if decision.message:
        print(decision.message, flush=True)
    print(f"sweep folder: {folder}", flush=True)
    if space is not None:
        print(format_space_table(space), flush=True)
    return execute(summary, base, space, settings, config, max_epochs, visible_gpus(), resume=False)


def execute(
    summary: SweepSummary,
    base: dict[str, Any],
    space: SearchSpace | None,
    settings: AutomlSettings,
    config: dict[str, Any],
    max_epochs: int,
    gpus: list[int],
    *,
    resume: bool,
) -> int:
    # trials of a shared storage are recorded with absolute folders (other processes read them)
    folder = summary.folder.resolve() if space is not None and config.get("storage") else summary.folder
    threads = {"OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]} if os.environ.get("OMP_NUM_THREADS") else {}
    plan = SweepPlan(
        folder=folder,
        base_spec=base,
        space=space,
        settings=settings,
        max_epochs=max_epochs,
        concurrency=concurrency(settings, base, gpus),
        devices=gpus or None,
        trial_env={**threads, **rendezvous_env(base)},
        action=config.get("action", "train"),
        storage=config.get("storage") if space is not None else None,
        study=config.get("study") or folder.name,
        ray_address=config.get("ray_address"),
        # what an `automl worker` needs to join a shared storage's study
        definition={**config, "max_epochs": max_epochs, "folder": str(folder.resolve())},
    )
    backend = make_backend(settings.backend if space is not None else "none", plan)
    uri = config.get("tracking_uri") if config.get("track", True) else "off"
    tracker = Tracker.open(uri, config.get("experiment") or DEFAULT_EXPERIMENT, folder)
    tracker.start_sweep(summary.data)
    with SweepDisplay(settings.metric, maximize=plan.objective.maximize) as display:
        loop = SweepLoop(plan, summary, display, tracker)
        try:
            data = loop.run(backend, resume=resume)
        except KeyboardInterrupt:
            summary.set(status="STOPPED")
            tracker.finish_sweep(summary.data)
            raise
    tracker.finish_sweep(data)
    if tracker.degraded:
        print(
            f"warning: some tracking was not logged; run `automl sync {folder}` when the store is back",
            flush=True,
        )
    display.final_table(data["trials"], (data.get("best") or {}).get("trial"))
    best = data.get("best")
    if best:
        print(
            f"best: trial {best['trial']} {best['metric']}={best['value']:.4f} (epoch {best['best_epoch']}) "
            f"{best['checkpoint']}",
            flush=True,
        )
    else:
        print(f"the sweep found no result: {data.get('failure') or 'no trial finished'}", flush=True)
    print(f"sweep folder: {folder}", flush=True)
    if best and config.get("pipeline", True):
        from automl.pipeline.best_trial import pipeline_after_sweep

        pipeline_after_sweep(summary, tracker)  # a failed step is recorded; the sweep's result stands
    return 0 if best else 1


def resume(sweep_dir: str) -> int:
    folder = Path(sweep_dir)
    data = read_summary(folder)
    config = data["config"]
    settings = parse_settings(config["setting_pairs"])
    base = config["base_spec"]
    space = None
    if data["policy"]["decision"] == "auto":
        ranges = config.get("param_ranges") or {}
        space = make_space(Path(config["schema"]), base, settings, ranges, config.get("action", "train"))
    summary = SweepSummary(folder, data)
    summary.set(status="RUNNING", resumed=time.time())
    print(f"resuming sweep {folder}", flush=True)
    max_epochs = int(data["max_epochs"])
    return execute(summary, base, space, settings, config, max_epochs, visible_gpus(), resume=True)
