"""``automl run``: from the command line to a finished sweep (or a plain training run).

Order: the checks that compute nothing (``--results-dir``, ``--name``, ``--storage``, policy, settings:
a bad flag writes nothing) -> spec (``-e`` or the demo preset, whose synthetic dataset is generated when
missing) -> search space (from the train schema) -> sweep folder -> backend (by name) -> the sweep
loop -> best trial -> its pipeline. Once summary.json is written, an error leaves it FAILED with the
reason (:func:`failed_on_error`), never RUNNING. ``--resume`` checks the study journal before the sweep
is marked RUNNING again; ``--rebuild-study`` first rebuilds it (:mod:`automl.commands.rebuild`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from automl.backends import BACKENDS, make_backend
from automl.backends.base import SweepPlan
from automl.backends.storage_url import check_storage, journal_path
from automl.commands.sweep_folder import check_sweep_location, make_sweep_folder, summary_document
from automl.commands.sweep_inputs import (
    concurrency,
    demo_spec,
    make_space,
    param_ranges,
    settings_from_args,
    sweep_epochs,
)
from automl.errors import AutomlError, SettingError, SweepFolderError, SweepWriteError
from automl.launch.devices import visible_gpus
from automl.launch.rendezvous import rendezvous_env
from automl.project_files import schema_file
from automl.results.pareto import front_numbers
from automl.results.summary import SUMMARY, SweepSummary, read_summary, rebuild_command
from automl.settings.action_profiles import action_profile, check_action_settings
from automl.settings.policy import resolve_policy
from automl.settings.tao_settings import AutomlSettings, parse_settings
from automl.space.build import format_space_table
from automl.space.params import SearchSpace
from automl.spec import resolve_spec, set_dotted
from automl.sweep.display import SweepDisplay
from automl.sweep.loop import SweepLoop
from automl.tracking.tracker import DEFAULT_EXPERIMENT, Tracker

__all__ = ["execute", "failed_on_error", "resume", "start"]


def start(args: Any) -> int:
    # what needs no computing is checked first: nothing is written or trained for a bad flag
    check_sweep_location(args.results_dir, args.name)
    check_storage(args.storage)
    decision = resolve_policy(args.policy, args.request)
    action = action_profile(getattr(args, "action", None)).action
    settings = parse_settings(settings_from_args(args))
    check_action_settings(settings, action)
    if decision.search and (settings.backend not in BACKENDS or settings.backend == "none"):
        names = " or ".join(n for n in BACKENDS if n != "none")
        raise SettingError(f"backend: {settings.backend!r} is not available; use {names}")
    pipeline_trials = pipeline_choice(args, settings)
    ranges = param_ranges(args.param)
    spec_path = Path(args.experiment_spec) if args.experiment_spec else demo_spec()
    base = resolve_spec(spec_path, args.overrides, action=action)
    max_epochs = sweep_epochs(settings, base)
    base = set_dotted(base, "train.num_epochs", max_epochs)  # the space sees the epochs trials will run
    schema_path = Path(args.schema) if args.schema else schema_file(action)
    space = make_space(schema_path, base, settings, ranges, action) if decision.search else None
    folder = make_sweep_folder(args.results_dir, args.name)
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
        "pipeline_trials": pipeline_trials,
        "action": action,
    }
    policy = {
        "decision": "auto" if decision.search else "off",
        "reason": decision.reason,
        "message": decision.message,
    }
    summary = SweepSummary(folder, summary_document(folder.name, settings, config, space, max_epochs, policy))
    summary.save()
    with failed_on_error(summary):
        print(f"AutoML: {'search' if decision.search else 'plain training'} ({decision.reason})", flush=True)
        if decision.message:
            print(decision.message, flush=True)
        print(f"sweep folder: {folder}", flush=True)
        if space is not None:
            print(format_space_table(space), flush=True)
        return execute(summary, base, space, settings, config, max_epochs, visible_gpus(), resume=False)


def pipeline_choice(args: Any, settings: AutomlSettings) -> str:
    """``--pipeline best|pareto``, refused where it cannot apply (before anything runs)."""
    choice = str(getattr(args, "pipeline", None) or "best")
    if choice == "pareto" and not settings.objectives:
        raise SettingError(
            "--pipeline pareto: a single-objective sweep has no Pareto front; add --objectives "
            "val_mAP50,latency_ms, or drop --pipeline pareto to run the best trial's pipeline"
        )
    if choice == "pareto" and getattr(args, "no_pipeline", False):
        raise SettingError("--pipeline pareto and --no-pipeline contradict each other; keep one")
    return choice


@contextlib.contextmanager
def failed_on_error(summary: SweepSummary) -> Iterator[None]:
    """An error once summary.json is written (a storage that cannot be opened, a backend that cannot
    start, a crash of the loop) leaves the sweep FAILED with the reason, and Ctrl-C STOPPED: never
    RUNNING."""
    try:
        yield
    except KeyboardInterrupt:
        if summary.data.get("status") == "RUNNING":
            with contextlib.suppress(SweepWriteError):  # a full disk keeps the last whole summary.json
                summary.set(status="STOPPED")
        raise
    except Exception as exc:
        if summary.data.get("status") == "RUNNING":
            reason = str(exc) if isinstance(exc, AutomlError) else f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(SweepWriteError):
                summary.set(status="FAILED", failure=" ".join(reason.split()), finished=time.time())
        raise


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
    try:
        with SweepDisplay(settings.metric, maximize=plan.objective.maximize) as display:
            loop = SweepLoop(plan, summary, display, tracker)
            with failed_on_error(summary):
                data = loop.run(backend, resume=resume)
    except BaseException:
        tracker.finish_sweep(summary.data)  # the sweep's MLflow run ends as summary.json says
        raise
    tracker.finish_sweep(data)
    if tracker.degraded:
        print(
            f"warning: some tracking was not logged; run `automl sync {folder}` when the store is back",
            flush=True,
        )
    display.final_table(data["trials"], (data.get("best") or {}).get("trial"), front_numbers(data))
    best = data.get("best")
    if best:
        print(
            f"best: trial {best['trial']} {best['metric']}={best['value']:.4f} (epoch {best['best_epoch']}) "
            f"{best['checkpoint']}",
            flush=True,
        )
    else:
        print(f"the sweep found no result: {data.get('failure') or _no_result(data['trials'])}", flush=True)
    print(f"sweep folder: {folder}", flush=True)
    if best and config.get("pipeline", True):
        from automl.pipeline.after_sweep import pipeline_after_sweep

        pareto = config.get("pipeline_trials") == "pareto"
        pipeline_after_sweep(summary, tracker, pareto=pareto)  # a failed step is recorded; the result stands
    return 0 if best else 1


def _no_result(trials: list[dict[str, Any]]) -> str:
    infeasible = [t for t in trials if t.get("failure_class") == "infeasible"]
    if trials and len(infeasible) == len(trials):
        fastest = min((t["latency_ms"] for t in infeasible if t.get("latency_ms") is not None), default=None)
        shown = f" (the fastest measured {fastest:.2f} ms)" if fastest is not None else ""
        return (
            f"all {len(trials)} trials were over --max-latency-ms{shown}, so none trained; raise the limit or "
            "search smaller networks (model.* keys, a smaller eval_spatial_size)"
        )
    return "no trial finished"


def _resume_inputs(
    folder: Path, data: dict[str, Any]
) -> tuple[AutomlSettings, dict[str, Any], SearchSpace | None]:
    try:
        config = data["config"]
        settings = parse_settings(config["setting_pairs"])
        base = config["base_spec"]
        searched = data["policy"]["decision"] == "auto"
        int(data["max_epochs"])
    except (KeyError, TypeError, ValueError) as exc:
        missing = f"no {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())
        raise SweepFolderError(
            f"{folder / SUMMARY}: not a complete sweep summary ({missing}); the trial folders and the study "
            f"journal still hold the results: rebuild it with {rebuild_command(folder)}"
        ) from None
    space = None
    if searched:
        ranges = config.get("param_ranges") or {}
        space = make_space(Path(config["schema"]), base, settings, ranges, config.get("action", "train"))
    return settings, base, space


def _check_study(folder: Path, data: dict[str, Any]) -> None:
    """Before the sweep is marked RUNNING again: its journal can be read (a torn last record is cut)."""
    if data.get("backend") != "optuna":
        return
    from automl.backends.optuna.journal_file import check_journal

    storage = data["config"].get("storage")
    journal = journal_path(storage, folder)
    if journal is not None:
        warning = check_journal(journal, folder, shared=bool(storage))
        if warning:
            print(warning, flush=True)


def resume(sweep_dir: str, *, rebuild: bool = False, storage: str | None = None) -> int:
    """``automl run --resume SWEEP`` (``rebuild``: ``--rebuild-study`` first; ``storage``: where the
    study is when summary.json, which names it, is lost)."""
    folder = Path(sweep_dir)
    if rebuild:
        from automl.commands.rebuild import rebuild_sweep

        data = rebuild_sweep(folder, storage)
    else:
        data = read_summary(folder)
    settings, base, space = _resume_inputs(folder, data)
    if space is not None and not rebuild:
        _check_study(folder, data)
    summary = SweepSummary(folder, data)
    summary.set(status="RUNNING", resumed=time.time())
    print(f"resuming sweep {folder}", flush=True)
    with failed_on_error(summary):
        max_epochs = int(data["max_epochs"])
        return execute(
            summary, base, space, settings, data["config"], max_epochs, visible_gpus(), resume=True
        )
