"""Which pipelines run after a sweep: the best trial's, and with ``--pipeline pareto`` every trial
of a multi-objective sweep's Pareto front.

The best trial (the most accurate within ``--max-latency-ms``) always gets ``<sweep>/best/`` and
summary ``pipeline``. With ``pareto``, every other front trial gets the same steps in
``<sweep>/pareto/NNNN/``, recorded in summary ``pareto_pipelines["NNNN"]`` (the best trial's entry
there is a copy of ``pipeline``) and in MLflow as steps ``pareto-NNNN-<step>``. In a latency sweep
each ``engine_evaluate`` records the deployed model's mAP and its latency (see
``automl.pipeline.deployed_latency``), so the front can be read as deployed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from automl.errors import AutomlError
from automl.pipeline.best_trial import FAILED, Pipeline, step_line
from automl.results.summary import SweepSummary
from automl.tracking.protocol import SweepTracker

__all__ = ["PARETO_FOLDER", "failed_steps", "pareto_lines", "pipeline_after_sweep", "run_pipeline"]

PARETO_FOLDER = "pareto"


def _key(number: int) -> str:
    return f"{int(number):04d}"


def _front_pipelines(
    record: SweepSummary, tracker: SweepTracker, overrides: Sequence[str], timeout: float | None
) -> None:
    front = record.data.get("pareto_front")
    if not record.data.get("objectives") or front is None:
        raise AutomlError(
            f"{record.folder}: --pipeline pareto needs a multi-objective sweep (automl run --objectives "
            "val_mAP50,latency_ms); this one has no Pareto front"
        )
    best = (record.data.get("best") or {}).get("trial")
    print(
        f"pipeline: {len(front)} Pareto front trials: {', '.join(str(e['trial']) for e in front)}", flush=True
    )
    for entry in front:
        key = _key(entry["trial"])
        runs = dict(record.data.get("pareto_pipelines") or {})
        if entry["trial"] == best and record.data.get("pipeline"):
            runs[key] = copy.deepcopy(record.data["pipeline"])  # ran in best/ already
            record.set(pareto_pipelines=runs)
            continue
        try:
            pipeline = Pipeline(
                record,
                tracker,
                overrides,
                timeout,
                trial=entry,
                folder=record.folder / PARETO_FOLDER / key,
                key=key,
            )
        except AutomlError as exc:  # one trial's missing checkpoint stops only its own pipeline
            print(f"pipeline pareto-{key}: stopped: {exc}", flush=True)
            runs[key] = {"status": "FAILED", "trial": entry["trial"], "error": str(exc)}
            record.set(pareto_pipelines=runs)
            continue
        pipeline.run()


def run_pipeline(
    record: SweepSummary,
    tracker: SweepTracker,
    overrides: Sequence[str] = (),
    timeout: float | None = None,
    *,
    pareto: bool = False,
) -> dict[str, Any]:
    """Run the best trial's pipeline of a finished sweep (and with ``pareto`` every front trial's),
    then refresh the sweep's MLflow run (its summary.json, and the best ONNX model joins the
    registered model version). Returns the best trial's ``pipeline`` section."""
    if pareto and not record.data.get("objectives"):
        _front_pipelines(record, tracker, overrides, timeout)  # refuses, before any step runs
    steps = Pipeline(record, tracker, overrides, timeout).run()
    if pareto:
        _front_pipelines(record, tracker, overrides, timeout)
    tracker.finish_sweep(record.data)
    return steps


def failed_steps(summary: dict[str, Any], *, pareto: bool = False) -> list[str]:
    """The failed steps of the best trial's pipeline (and with ``pareto`` of the front's)."""
    runs = {"": summary.get("pipeline") or {}}
    if pareto:
        runs.update({f"pareto-{k}-": v for k, v in (summary.get("pareto_pipelines") or {}).items()})
    failed = []
    for prefix, steps in runs.items():
        failed += [prefix + n for n, s in steps.items() if isinstance(s, dict) and s.get("state") == FAILED]
        if prefix and steps.get("error"):  # stopped before its steps (a missing checkpoint)
            failed.append(prefix.rstrip("-"))
    return failed


def pareto_lines(summary: dict[str, Any]) -> list[str]:
    """One line per front trial's deployed model, as ``automl status`` and ``automl run`` print it."""
    lines = []
    for key, steps in sorted((summary.get("pareto_pipelines") or {}).items()):
        deployed = steps.get("engine_evaluate") if isinstance(steps, dict) else None
        if isinstance(deployed, dict):
            shown = step_line("engine_evaluate", deployed).removeprefix("pipeline ")
        else:
            shown = f"{steps.get('status')}: {steps.get('error') or ''}"
        lines.append(f"pareto trial {int(key)}: {shown}")
    return lines


def pipeline_after_sweep(record: SweepSummary, tracker: SweepTracker, *, pareto: bool = False) -> None:
    """``automl run``'s call after a sweep with a best trial: a pipeline failure is reported and
    recorded, never turned into a failed sweep."""
    try:
        run_pipeline(record, tracker, pareto=pareto)
    except Exception as exc:  # the search result must survive any pipeline problem
        reason = str(exc) if isinstance(exc, AutomlError) else f"{type(exc).__name__}: {exc}"
        print(f"pipeline: stopped: {reason}; run it again with `automl pipeline {record.folder}`", flush=True)
        record.set(pipeline={**(record.data.get("pipeline") or {}), "status": "FAILED", "error": reason})
    for line in pareto_lines(record.data) if pareto else []:
        print(line, flush=True)
