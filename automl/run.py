"""``automl run``: from the command line to a finished sweep (or a plain training run).

Order: spec (``-e`` or the demo preset, whose synthetic dataset is generated when missing) -> policy
(``--policy``, ``--request``, the runnability gate) -> settings (TAO names) -> search space (from the
train schema) -> sweep folder -> backend -> trials -> best trial.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from automl.action_profiles import action_profile, check_action_settings, quantize_space, setting_defaults
from automl.display import SweepDisplay
from automl.errors import AutomlError, SettingError
from automl.gpu_pool import visible_gpus
from automl.policy import resolve_policy
from automl.schema_rows import load_schema
from automl.search_param import SearchSpace
from automl.settings import AutomlSettings, parse_setting_args, parse_settings
from automl.space import build_space, format_space_table
from automl.spec import get_dotted, resolve_spec, rtdetr_command, set_dotted
from automl.summary import SweepRecord, read_summary
from automl.sweep import Sweep, SweepPlan
from automl.tracking import DEFAULT_EXPERIMENT, Tracker
from automl.worker import SharedSweep, rendezvous_env

ROOT = Path(__file__).resolve().parent.parent
DEMO_SPEC = ROOT / "configs" / "demo.yaml"
DEMO_DATA = Path("data/synthetic")


def demo_spec() -> Path:
    """The embedded default; its synthetic dataset is generated in ./data/synthetic when missing."""
    if not (DEMO_DATA / "label_map.txt").is_file():
        print(f"No spec given: generating the synthetic dataset in {DEMO_DATA.resolve()}", flush=True)
        proc = subprocess.run([*rtdetr_command(), "dataset", "synth", "--out", str(DEMO_DATA)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise AutomlError(f"could not generate the synthetic dataset: {proc.stderr.strip()[-1000:]}")
    return DEMO_SPEC


def settings_from_args(args: Any) -> dict[str, Any]:
    pairs = parse_setting_args(args.setting or [])
    flags = {
        "automl_algorithm": args.algorithm,
        "automl_max_recommendations": args.trials,
        "automl_max_epochs": args.max_epochs,
        "automl_max_concurrent": args.concurrency,
        "time_budget": getattr(args, "time_budget", None),
        "seed": args.seed,
    }
    pairs.update({k: v for k, v in flags.items() if v is not None})
    if args.backend:
        pairs["backend"] = args.backend
    # the action's defaults: its metric (quantize: test_mAP50), no early stopping without epochs
    return setting_defaults(pairs, getattr(args, "action", None))


def param_ranges(items: Sequence[str]) -> dict[str, str]:
    ranges: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise SettingError(f"--param {item!r}: expected name=range, e.g. train.optim.lr=1e-5:1e-3:log")
        name, text = item.split("=", 1)
        ranges[name.strip()] = text.strip()
    return ranges


def make_space(
    schema_path: Path,
    spec: dict[str, Any],
    settings: AutomlSettings,
    ranges: dict[str, str],
    action: str = "train",
) -> SearchSpace:
    schema = load_schema(schema_path)
    if action == "quantize":  # one categorical over the allowed backend/mode/algorithm/dtype rows
        hyper = list(settings.hyperparameters) if settings.hyperparameters else None
        return quantize_space(
            schema, spec, hyperparameters=hyper, user_ranges={**settings.custom_param_ranges, **ranges}
        )
    space = build_space(
        schema, spec, hyperparameters=list(settings.hyperparameters) if settings.hyperparameters else None,
        override_disabled=settings.override_disabled_params, user_ranges={**settings.custom_param_ranges, **ranges},
    )  # fmt: skip
    if not space.params:
        raise SettingError(
            "the search space is empty: every requested parameter is excluded or disabled; see `automl space` "
            "and pass --param name=low:high or --setting automl_hyperparameters=[...]"
        )
    return space


def _concurrency(settings: AutomlSettings, spec: dict[str, Any], gpus: list[int]) -> int:
    if settings.max_concurrent:
        return int(settings.max_concurrent)
    per_trial = int(get_dotted(spec, "train.num_gpus", 1) or 1)
    return max(1, len(gpus) // per_trial) if gpus else 1


def _sweep_folder(results_dir: str, name: str | None) -> Path:
    folder = Path(results_dir) / (name or time.strftime("sweep-%Y%m%d-%H%M%S"))
    if (folder / "summary.json").exists():
        raise AutomlError(f"{folder} already holds a sweep; continue it with `automl run --resume {folder}` "
                          f"or choose another --name")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start(args: Any) -> int:
    spec_path = Path(args.experiment_spec) if args.experiment_spec else demo_spec()
    decision = resolve_policy(args.policy, args.request, ROOT)
    action = action_profile(getattr(args, "action", None)).action
    settings = parse_settings(settings_from_args(args))
    check_action_settings(settings, action)
    ranges = param_ranges(args.param)
    base = resolve_spec(spec_path, args.overrides, action=action)
    max_epochs = int(settings.max_epochs or get_dotted(base, "train.num_epochs", 1))
    max_epochs *= int(settings.epoch_multiplier)
    base = set_dotted(base, "train.num_epochs", max_epochs)  # the space sees the epochs trials will run
    schema_path = Path(args.schema) if args.schema else ROOT / "schemas" / f"{action}.schema.json"
    space = make_space(schema_path, base, settings, ranges, action) if decision.search else None
    folder = _sweep_folder(args.results_dir, args.name)
    gpus = visible_gpus()
    experiment = args.experiment or str(base.get("model_name") or "") or DEFAULT_EXPERIMENT
    config = {
        "tracking_uri": args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"),
        "track": not args.no_track,
        "experiment": experiment,
        "spec_path": str(spec_path), "overrides": list(args.overrides), "base_spec": base,
        "setting_pairs": settings_from_args(args), "param_ranges": ranges, "schema": str(schema_path),
        "storage": args.storage, "study": folder.name, "ray_address": getattr(args, "ray_address", None),
        "pipeline": not getattr(args, "no_pipeline", False) and action == "train",  # best trial's evaluate/export/engine
        "action": action,
    }  # fmt: skip
    record = SweepRecord(folder, {
        "name": folder.name, "status": "RUNNING", "started": time.time(), "action": action,
        "metric": {"name": settings.metric, "direction": settings.direction,
                   "description": action_profile(action).metric_description if settings.metric == action_profile(action).metric
                   else settings.metric},
        "policy": {"decision": "auto" if decision.search else "off", "reason": decision.reason, "message": decision.message},
        "backend": settings.backend if decision.search else "none",
        "algorithm": {"sampler": settings.algorithm, "fidelity": settings.fidelity, "name": settings.algorithm_name}
        if decision.search else None,
        "settings": asdict(settings), "config": config,
        "space": space.as_dict() if space is not None else None,
        "max_epochs": max_epochs, "trials": [], "best": None, "pipeline": {},
    })  # fmt: skip
    record.save()
    print(f"AutoML: {'search' if decision.search else 'plain training'} ({decision.reason})", flush=True)
    if decision.message:
        print(decision.message, flush=True)
    print(f"sweep folder: {folder}", flush=True)
    if space is not None:
        print(format_space_table(space), flush=True)
    return execute(record, base, space, settings, config, max_epochs, gpus, create=True)


def execute(record: SweepRecord, base: dict[str, Any], space: SearchSpace | None, settings: AutomlSettings,
            config: dict[str, Any], max_epochs: int, gpus: list[int], *, create: bool) -> int:  # fmt: skip
    study = None
    ray_backend = space is not None and settings.backend == "ray"  # Ray Tune: automl/backends/ray_tune.py
    if space is not None and not ray_backend:
        if settings.backend != "optuna":
            raise SettingError(f"backend: {settings.backend!r} is not available; use optuna or ray")
        from automl.backends.optuna_study import make_storage, open_study

        storage = make_storage(config.get("storage"), record.folder)
        definition = {**config, "max_epochs": max_epochs, "folder": str(record.folder.resolve())}
        study = open_study(
            config["study"], storage, settings, max_epochs, create=create, definition=definition
        )
        if create and settings.run_baseline and not study.trials:
            from automl.sampling import encode_params

            # TAO's baseline: the first trial runs the spec's own values
            study.enqueue_trial(encode_params(space, space.defaults()), user_attrs={"baseline": True})
        if not create:
            from automl.resume import requeue_interrupted

            requeue_interrupted(study, record)
    tracker = Tracker.open(config.get("tracking_uri") if config.get("track", True) else "off",
                           config.get("experiment") or DEFAULT_EXPERIMENT, record.folder)  # fmt: skip
    tracker.start_sweep(record.data)
    plan = SweepPlan(
        folder=record.folder, base_spec=base, space=space, settings=settings, max_epochs=max_epochs,
        concurrency=_concurrency(settings, base, gpus), devices=gpus or None, study=study, tracker=tracker,
        action=config.get("action", "train"),
        trial_env={**({"OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]} if os.environ.get("OMP_NUM_THREADS") else {}),
                   **rendezvous_env(base)},
    )  # fmt: skip
    with SweepDisplay(settings.metric) as display:
        # with a shared --storage, `automl worker` processes may join: the trial budget is the study's
        sweep = (
            SharedSweep(plan, record, display)
            if study is not None and config.get("storage")
            else Sweep(plan, record, display)
        )
        try:
            if ray_backend:
                from automl.backends.ray_tune import run_ray_sweep

                data = run_ray_sweep(plan, record, display, address=config.get("ray_address"), create=create)
            else:
                data = sweep.run()
        except KeyboardInterrupt:
            record.set(status="STOPPED")
            tracker.finish_sweep(record.data)
            raise
    tracker.finish_sweep(data)
    if getattr(tracker, "degraded", False):
        print(f"warning: some tracking was not logged; run `automl sync {record.folder}` when the store is back",
              flush=True)  # fmt: skip
    display.final_table(data["trials"], (data.get("best") or {}).get("trial"))
    best = data.get("best")
    if best:
        print(f"best: trial {best['trial']} {best['metric']}={best['value']:.4f} (epoch {best['best_epoch']}) "
              f"{best['checkpoint']}", flush=True)  # fmt: skip
    else:
        print(f"the sweep found no result: {data.get('failure') or 'no trial finished'}", flush=True)
    print(f"sweep folder: {record.folder}", flush=True)
    if best and config.get("pipeline", True):
        from automl.pipeline import pipeline_after_sweep

        pipeline_after_sweep(record, tracker)  # a failed step is recorded; the sweep's result stands
    return 0 if best else 1


def resume(sweep_dir: str) -> int:
    folder = Path(sweep_dir)
    data = read_summary(folder)
    config = data["config"]
    settings = parse_settings(config["setting_pairs"])
    base = config["base_spec"]
    space = None
    if data["policy"]["decision"] == "auto":
        space = make_space(Path(config["schema"]), base, settings, config.get("param_ranges") or {},
                           config.get("action", "train"))  # fmt: skip
    record = SweepRecord(folder, data)
    record.set(status="RUNNING", resumed=time.time())
    print(f"resuming sweep {folder}", flush=True)
    return execute(
        record, base, space, settings, config, int(data["max_epochs"]), visible_gpus(), create=False
    )
