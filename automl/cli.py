"""``automl``: hyperparameter search over RT-DETR training.

automl run [-e spec.yaml] [key=value ...] [--policy auto|on|off] [--request TEXT] [--backend optuna|ray]
           [--algorithm tpe|bayesian|random|hyperband|asha|...] [--trials N] [--max-epochs N]
           [--concurrency N] [--results-dir DIR] [--name NAME] [--resume SWEEP] [--storage URL]
           [--setting k=v ...] [--param name=range ...]
automl run --resume SWEEP [--rebuild-study]
                             continue a stopped or killed sweep; rebuild its damaged study or summary.json
automl worker --storage URL --study NAME [--results-dir DIR] [--concurrency N]
                             join a sweep from another process or machine
automl status SWEEP          a table of the trials and the best
automl best SWEEP            the best checkpoint and parameters
automl pipeline SWEEP [--pareto] [key=value ...]
                             evaluate, export, gen_trt_engine, evaluate the deployed model (again)
automl space [-e spec.yaml]  the search space the schema gives, and what is excluded and why
automl validate [-e spec.yaml] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from automl.errors import AutomlError, SettingError

__all__ = ["build_parser", "main"]

# Options whose value may start with "-": argparse would take ``--time-budget -5m`` for two flags; joined
# as ``--time-budget=-5m`` the value reaches its check, which says what is wrong with it.
_DASH_VALUE_OPTIONS = ("--time-budget",)
_DASH_VALUE = re.compile(r"-[\d.]")


def attach_dash_values(argv: Sequence[str]) -> list[str]:
    """``[..., "--time-budget", "-5m", ...]`` -> ``[..., "--time-budget=-5m", ...]``."""
    out: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        following = items[index + 1] if index + 1 < len(items) else None
        if item in _DASH_VALUE_OPTIONS and following is not None and _DASH_VALUE.match(following):
            out.append(f"{item}={following}")
            index += 2
            continue
        out.append(item)
        index += 1
    return out


def _validate(args: argparse.Namespace) -> int:
    from automl.project_files import demo_spec_file
    from automl.spec import resolve_spec

    spec = resolve_spec(args.experiment_spec or demo_spec_file(), args.overrides, action=args.action)
    print(yaml.safe_dump(spec, sort_keys=False), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    from automl.commands.run import resume, start

    if args.rebuild_study and not args.resume:
        raise SettingError(
            "--rebuild-study: rebuilds a stopped sweep's study and summary.json from its trial folders; "
            "name the sweep with --resume SWEEP (automl run --resume results/<sweep> --rebuild-study)"
        )
    if args.resume:
        return resume(args.resume, rebuild=args.rebuild_study, storage=args.storage)
    return start(args)


def _status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from automl.results.pareto import front_numbers
    from automl.sweep.display import trials_table
    from automl.sweep.view import sweep_view

    data = sweep_view(args.sweep)  # with a shared storage: every process's trials
    best = data.get("best") or {}
    console = Console(width=None if sys.stdout.isatty() else 160)
    policy = data.get("policy") or {}
    console.print(
        f"sweep {data.get('name')}: {data.get('status')} | policy {policy.get('decision')} "
        f"({policy.get('reason')}) | backend {data.get('backend')}"
    )
    metric = (best or {}).get("metric") or (data.get("metric") or {}).get("name", "val_mAP50")
    console.print(trials_table(data.get("trials", []), best.get("trial"), metric, front_numbers(data)))
    if best:
        console.print(
            f"best: trial {best['trial']} {best['metric']}={best['value']:.4f} epoch {best['best_epoch']}"
        )
    elif data.get("failure"):
        console.print(f"no result: {data['failure']}")
    pipeline = data.get("pipeline") or {}
    if pipeline:
        from automl.pipeline.best_trial import STEPS, step_line

        console.print(f"pipeline of trial {pipeline.get('trial')}: {pipeline.get('status')}", highlight=False)
        for step in STEPS:
            if isinstance(pipeline.get(step), dict):
                console.print(
                    "  " + step_line(step, pipeline[step]).removeprefix("pipeline "),
                    highlight=False,
                    markup=False,
                )
        if pipeline.get("error"):
            console.print(f"  stopped: {pipeline['error']}", highlight=False, markup=False)
    if data.get("pareto_pipelines"):
        from automl.pipeline.after_sweep import pareto_lines

        for line in pareto_lines(data):
            console.print(line, highlight=False, markup=False)
    return 0


def _best(args: argparse.Namespace) -> int:
    from automl.sweep.view import sweep_view

    data = sweep_view(args.sweep)
    best = data.get("best")
    if not best:
        raise AutomlError(
            f"{args.sweep}: no trial has a result yet ({data.get('failure') or data.get('status')})"
        )
    if args.json:
        print(json.dumps(best, indent=2))
    else:
        print(f"checkpoint: {best['checkpoint']}")
        print(f"{best['metric']}: {best['value']:.4f} (trial {best['trial']}, epoch {best['best_epoch']})")
        for name, value in sorted((best.get("params") or {}).items()):
            print(f"  {name} = {value}")
    return 0


def _space(args: argparse.Namespace) -> int:
    from automl.commands.sweep_inputs import make_space, param_ranges
    from automl.project_files import demo_spec_file, schema_file
    from automl.settings.tao_settings import parse_setting_args, parse_settings
    from automl.space.build import format_space_table
    from automl.spec import resolve_spec

    action = getattr(args, "action", None) or "train"
    spec_path = args.experiment_spec or demo_spec_file()
    spec = resolve_spec(spec_path, args.overrides, action=action, check_paths=False)
    settings = parse_settings(parse_setting_args(args.setting or []))
    schema = Path(args.schema) if args.schema else schema_file(action)
    print(format_space_table(make_space(schema, spec, settings, param_ranges(args.param), action)))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from automl.commands.worker import run_worker

    return run_worker(args.storage, args.study, args.results_dir, args.concurrency)


def _pipeline(args: argparse.Namespace) -> int:
    from automl.pipeline.after_sweep import failed_steps, pareto_lines, run_pipeline
    from automl.results.summary import SweepSummary, read_summary
    from automl.tracking.tracker import DEFAULT_EXPERIMENT, Tracker

    folder = Path(args.sweep)
    record = SweepSummary(folder, read_summary(folder))
    config = record.data.get("config") or {}
    uri = (
        "off"
        if args.no_track or not config.get("track", True)
        else args.tracking_uri or config.get("tracking_uri")
    )
    tracker = Tracker.open(uri, config.get("experiment") or DEFAULT_EXPERIMENT, folder)
    run_pipeline(record, tracker, args.overrides, args.timeout, pareto=args.pareto)
    failed = failed_steps(record.data, pareto=args.pareto)
    for line in pareto_lines(record.data) if args.pareto else []:
        print(line)
    print(
        f"pipeline: {'failed steps: ' + ', '.join(failed) if failed else 'done'} ({folder / 'summary.json'})"
    )
    return 1 if failed else 0


def _sync(args: argparse.Namespace) -> int:
    from automl.tracking.sync import sync_sweep

    report = sync_sweep(args.sweep, args.tracking_uri, args.experiment)
    for line in report.lines():
        print(line)
    return 0


def _ui(args: argparse.Namespace) -> int:
    from automl.tracking.ui import serve_ui

    return serve_ui(args.results_dir, args.port, args.tracking_uri)


def _spec_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-e",
        "--experiment_spec",
        "--experiment-spec",
        dest="experiment_spec",
        help="spec YAML (default: the demo preset configs/demo.yaml on the synthetic dataset)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted spec overrides")


def _space_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--setting", action="append", metavar="k=v", help="an AutoML setting (TAO names)")
    parser.add_argument(
        "--param",
        action="append",
        metavar="name=range",
        help="search range: train.optim.lr=1e-5:1e-3:log, model.dec_layers=3:6, model.backbone=a,b",
    )
    parser.add_argument(
        "--schema", help="train schema to build the space from (default schemas/train.schema.json)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automl", description="Hyperparameter search for RT-DETR.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    run = sub.add_parser("run", help="search (or train once) and pick the best trial")
    _spec_args(run)
    _space_args(run)
    run.add_argument("--policy", help="auto (= on) searches, off trains once; default auto")
    run.add_argument("--request", help='a sentence such as "plain training please" (turns AutoML off)')
    run.add_argument("--backend", help="optuna (default) or ray (Ray Tune)")
    run.add_argument(
        "--action",
        default="train",
        choices=("train", "distill", "quantize"),
        help="what each trial runs: train (default), distill (ranked by val_mAP50) or quantize (ranked by "
        "the quantized model's test_mAP50; the backend/mode/algorithm/dtype rows allowed together)",
    )
    run.add_argument(
        "--ray-address", help="with --backend ray: join this Ray cluster (default: start a local Ray)"
    )
    run.add_argument(
        "--algorithm", help="hyperband (default: TPE + Hyperband), tpe, bayesian, random, asha, ..."
    )
    run.add_argument("--trials", type=int, help="number of trials (automl_max_recommendations)")
    run.add_argument("--max-epochs", type=int, help="epochs of a full trial (automl_max_epochs)")
    run.add_argument(
        "--time-budget",
        help="wall time for the trials, e.g. 12m or 2h: no trial starts after it and running trials "
        "stop at their next validation; --policy off training and the baseline trial fit their "
        "epochs and lr schedule to it (train.time_budget) (setting time_budget)",
    )
    run.add_argument(
        "--max-latency-ms",
        type=float,
        help="a trial whose network (untrained, ONNX Runtime on the CPU, batch 1, eval size) is slower is "
        "not trained: recorded PRUNED, failure class infeasible, with its latency (setting max_latency_ms)",
    )
    run.add_argument(
        "--objectives",
        help="a multi-objective search, e.g. val_mAP50,latency_ms (either order; name:min or name:max "
        "sets a direction): each trial's latency is measured before it trains, Hyperband prunes on the "
        "metric alone, and summary.json, automl status and MLflow show the Pareto front (setting objectives)",
    )
    run.add_argument(
        "--concurrency", type=int, help="trials at once (default: one per GPU group, 1 on a CPU)"
    )
    run.add_argument("--seed", type=int, help="sampler seed")
    run.add_argument("--results-dir", default="results", help="where sweep folders go (default ./results)")
    run.add_argument("--name", help="sweep folder name (default a timestamp)")
    run.add_argument("--resume", metavar="SWEEP", help="continue a sweep that was stopped or killed")
    run.add_argument(
        "--rebuild-study",
        action="store_true",
        help="with --resume: rebuild a damaged study journal and summary.json from the trial folders "
        "(finished trials are kept, interrupted ones re-queued), then resume",
    )
    run.add_argument("--storage", help="Optuna storage URL (default a journal file in the sweep folder)")
    run.add_argument(
        "--tracking-uri",
        help="MLflow store or server (default MLFLOW_TRACKING_URI, else sqlite:///<results-dir>/mlflow.db)",
    )
    run.add_argument("--experiment", help="MLflow experiment (default the spec's model_name, else 'automl')")
    run.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    run.add_argument(
        "--no-pipeline", action="store_true", help="skip the best trial's evaluate/export/engine pipeline"
    )
    run.add_argument(
        "--pipeline",
        choices=("best", "pareto"),
        default="best",
        help="which trials get the pipeline: the most accurate (within --max-latency-ms; default), or "
        "with --objectives every Pareto front trial (in <sweep>/pareto/NNNN/)",
    )
    run.set_defaults(func=_run)

    status = sub.add_parser("status", help="the trials of a sweep and its best")
    status.add_argument("sweep")
    status.set_defaults(func=_status)

    best = sub.add_parser("best", help="the best checkpoint and parameters of a sweep")
    best.add_argument("sweep")
    best.add_argument("--json", action="store_true")
    best.set_defaults(func=_best)

    space = sub.add_parser("space", help="print the search space, and what is excluded and why")
    _spec_args(space)
    _space_args(space)
    space.add_argument(
        "--action",
        default="train",
        choices=("train", "distill", "quantize"),
        help="the action whose search space to show (default train)",
    )
    space.set_defaults(func=_space)

    worker = sub.add_parser(
        "worker", help="join a sweep started with --storage: run its trials until the study's budget is used"
    )
    worker.add_argument("--storage", required=True, help="the sweep's Optuna storage URL (or .journal file)")
    worker.add_argument("--study", required=True, help="the study name (the sweep's --name)")
    worker.add_argument(
        "--results-dir", help="trial folders (default: the sweep folder when shared, else ./results/<study>)"
    )
    worker.add_argument("--concurrency", type=int, help="trials at once in this worker")
    worker.set_defaults(func=_worker)

    pipe = sub.add_parser(
        "pipeline", help="run the best trial's pipeline (evaluate, export, gen_trt_engine, evaluate) again"
    )
    pipe.add_argument("sweep")
    pipe.add_argument("overrides", nargs="*", metavar="key=value", help="spec overrides for every step")
    pipe.add_argument("--timeout", type=float, help="seconds one step may run (default: no limit)")
    pipe.add_argument("--tracking-uri", help="MLflow store (default the sweep's)")
    pipe.add_argument("--no-track", action="store_true", help="do not log the steps to MLflow")
    pipe.add_argument(
        "--pareto",
        action="store_true",
        help="also every Pareto front trial's (a sweep run with --objectives)",
    )
    pipe.set_defaults(func=_pipeline)

    sync = sub.add_parser("sync", help="log a sweep folder to MLflow (what tracking missed); safe to repeat")
    sync.add_argument("sweep")
    sync.add_argument("--tracking-uri")
    sync.add_argument("--experiment")
    sync.set_defaults(func=_sync)

    ui = sub.add_parser("ui", help="serve the MLflow UI for a results folder on 127.0.0.1")
    ui.add_argument(
        "--results-dir", default="results", help="the folder holding mlflow.db (default ./results)"
    )
    ui.add_argument("--port", type=int, default=5000, help="port (0 = a free one; default 5000)")
    ui.add_argument("--tracking-uri", help="another store instead of <results-dir>/mlflow.db")
    ui.set_defaults(func=_ui)

    val = sub.add_parser(
        "validate", help="check a sweep's base spec (as `rtdetr validate` does) and print it"
    )
    _spec_args(val)
    val.add_argument("--action", default="train", help="the action the sweep runs (default train)")
    val.set_defaults(func=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(attach_dash_values(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args) or 0)
    except AutomlError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
