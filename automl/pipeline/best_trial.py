"""The best trial's pipeline: evaluate -> export -> gen_trt_engine -> evaluate the deployed model.

Runs in ``<sweep>/best/`` after a search or a plain training run (``automl run``; ``--no-pipeline``
turns it off) and again on its own with ``automl pipeline <sweep>``. Every step is one ``rtdetr``
process on ``<sweep>/best/spec.yaml`` (the best trial's resolved spec with ``results_dir`` there):

- ``evaluate``: the best epoch's checkpoint on ``dataset.test_data_sources``; a spec without a test
  set is evaluated on ``val_data_sources`` instead (``data_source: val`` and a note say so).
- ``export``: that checkpoint to ``best/export/model.onnx``, at the eval size
  (``dataset.augmentation.eval_spatial_size``) unless the spec sets ``export.input_*``.
- ``gen_trt_engine``: a TensorRT engine ``best/gen_trt_engine/model.engine``; on a machine without
  TensorRT or a GPU the action says so and the step is SKIPPED with its message.
- ``engine_evaluate``: ``rtdetr evaluate`` of the engine when one was built, else of the ONNX model
  (ONNX Runtime), on the same data as ``evaluate``.

``summary.json`` ``pipeline`` holds one entry per step (``state`` SUCCESS|FAILED|SKIPPED,
``metrics``, ``seconds``, ``folder``, ``error`` or ``message``, and the step's files), saved after
each step; each step is also an MLflow child run of the sweep. A failed step is recorded with its
reason and the steps that need its output are SKIPPED saying so; the search result (``best``)
is never changed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from automl.errors import AutomlError
from automl.pipeline.deployed_latency import deployed_latency, measures_latency
from automl.pipeline.step_process import FAILED, SKIPPED, SUCCESS, StepOutcome, run_action
from automl.results.summary import SweepSummary
from automl.spec import get_dotted, set_dotted
from automl.tracking.protocol import SweepTracker

__all__ = ["FAILED", "STEPS", "Pipeline", "pipeline_spec", "step_line"]

STEPS = ("evaluate", "export", "gen_trt_engine", "engine_evaluate")


def step_line(step: str, entry: Mapping[str, Any]) -> str:
    """One pipeline step as ``automl run`` and ``automl status`` print it."""
    state = entry.get("state")
    shown = ""
    if state == SUCCESS:
        metrics = entry.get("metrics") or {}
        if "test_mAP50" in metrics:
            shown = f" test_mAP50={metrics['test_mAP50']:.4f} test_mAP={metrics.get('test_mAP', float('nan')):.4f}"
            if "latency_ms" in metrics:
                shown += f" latency_ms={metrics['latency_ms']:.2f}"
        elif "max_diff" in entry:
            shown = (
                f" {entry.get('onnx_file')} (ONNX Runtime vs PyTorch max abs diff {entry['max_diff']:.3g})"
            )
        else:
            shown = f" {entry.get('engine_file') or ''}"
    why = entry.get("error") or (entry.get("message") if state == SKIPPED else "")
    return (
        f"pipeline {step}: {state}{shown}"
        + (f" ({why})" if why else "")
        + f" [{entry.get('seconds', 0):.1f} s]"
    )


BEST_FOLDER = "best"
_BLANK = ("", "???", None)


def _blank(value: Any) -> bool:
    return value in _BLANK or (isinstance(value, str) and not value.strip())


def _has_source(sources: Any) -> bool:
    """A data source with an annotation file (a mapping, or a non-empty list of them)."""
    if isinstance(sources, list):
        return bool(sources) and all(_has_source(s) for s in sources)
    return isinstance(sources, Mapping) and not _blank(sources.get("json_file"))


def pipeline_spec(trial_spec: Mapping[str, Any], best_dir: Path) -> tuple[dict[str, Any], str]:
    """The spec every step runs, and the data it is evaluated on (``test`` or ``val``)."""
    spec = copy.deepcopy(dict(trial_spec))
    spec["results_dir"] = str(best_dir)
    for section in ("train", "evaluate", "export", "gen_trt_engine"):
        if isinstance(spec.get(section), dict):
            spec[section].pop("results_dir", None)
    data_source = "test"
    if not _has_source(get_dotted(spec, "dataset.test_data_sources")):
        val = get_dotted(spec, "dataset.val_data_sources")
        if _has_source(val):
            spec = set_dotted(spec, "dataset.test_data_sources", copy.deepcopy(val))
            data_source = "val"
    size = get_dotted(spec, "dataset.augmentation.eval_spatial_size")
    export = spec.get("export")
    export_sized = isinstance(export, dict) and ("input_height" in export or "input_width" in export)
    if isinstance(size, list) and len(size) == 2 and not export_sized:
        spec = set_dotted(spec, "export.input_height", int(size[0]))
        spec = set_dotted(spec, "export.input_width", int(size[1]))
    return spec, data_source


def _quote(value: Any) -> str:
    """A path as an override value that YAML reads back as that string."""
    return "'" + str(value).replace("'", "''") + "'"


class Pipeline:
    """The steps for one sweep folder; ``run()`` executes them in order."""

    def __init__(
        self,
        record: SweepSummary,
        tracker: SweepTracker,
        overrides: Sequence[str] = (),
        timeout: float | None = None,
        *,
        trial: Mapping[str, Any] | None = None,
        folder: Path | None = None,
        key: str | None = None,
    ):
        """The best trial's pipeline in ``<sweep>/best/`` (summary ``pipeline``); with ``trial`` (a
        ``pareto_front`` entry), ``folder`` and ``key``, that trial's in ``folder``, recorded in
        summary ``pareto_pipelines[key]`` and as MLflow steps ``pareto-<key>-<step>``."""
        self.record = record
        self.tracker = tracker
        self.overrides = list(overrides)
        self.timeout = timeout
        self.key = key
        self.best_dir = (folder or record.folder / BEST_FOLDER).resolve()
        best = dict(trial) if trial is not None else record.data.get("best") or {}
        if not best:
            raise AutomlError(
                f"{record.folder}: the sweep has no best trial yet "
                f"({record.data.get('failure') or record.data.get('status')}); nothing to evaluate or export"
            )
        self.best = best
        checkpoint = best.get("checkpoint")
        if _blank(checkpoint) or not Path(str(checkpoint)).is_file():
            raise AutomlError(
                f"{record.folder}: the best trial's checkpoint {checkpoint!r} is missing; the pipeline "
                f"needs it (was it deleted?)"
            )
        self.checkpoint = Path(str(checkpoint)).resolve()
        trial_dir = Path(best.get("folder") or record.folder / "trials" / f"{int(best['trial']):04d}")
        spec_file = trial_dir / "spec.yaml"
        try:
            trial_spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise AutomlError(f"cannot read the best trial's spec {spec_file}: {exc}") from None
        self.spec, self.data_source = pipeline_spec(trial_spec, self.best_dir)
        self.steps: dict[str, Any] = {}

    # --- recording ------------------------------------------------------------------------------
    def _save(self, **fields: Any) -> None:
        self.steps.update(fields)
        if self.key is None:
            self.record.set(pipeline=copy.deepcopy(self.steps))
        else:
            runs = dict(self.record.data.get("pareto_pipelines") or {})
            runs[self.key] = copy.deepcopy(self.steps)
            self.record.set(pareto_pipelines=runs)

    def _record(self, step: str, entry: dict[str, Any]) -> dict[str, Any]:
        self._save(**{step: entry})
        metrics = dict(entry.get("metrics") or {})
        for key in ("seconds", "max_diff"):
            if isinstance(entry.get(key), (int, float)):
                metrics[key] = entry[key]
        files = [
            Path(entry[k])
            for k in ("results_file", "onnx_file", "engine_file", "log_file")
            if entry.get(k) and Path(entry[k]).is_file()
        ]
        label = step if self.key is None else f"pareto-{self.key}-{step}"
        self.tracker.pipeline_step(label, metrics, files, entry["state"])
        print(step_line(label, entry), flush=True)
        return entry

    def _run(self, step: str, action: str, overrides: list[str]) -> tuple[StepOutcome, dict[str, Any]]:
        folder = self.best_dir / step
        outcome = run_action(
            action,
            self.best_dir / "spec.yaml",
            [*self.overrides, *overrides],
            folder,
            self.best_dir / "logs" / f"{step}.log",
            timeout=self.timeout,
        )
        entry: dict[str, Any] = {
            "state": outcome.state,
            "seconds": outcome.seconds,
            "folder": str(folder),
            "log_file": str(self.best_dir / "logs" / f"{step}.log"),
        }
        if outcome.state == FAILED:
            entry["error"] = outcome.message
        elif outcome.message:
            entry["message"] = outcome.message
        return outcome, entry

    @staticmethod
    def _skipped(reason: str) -> dict[str, Any]:
        return {"state": SKIPPED, "seconds": 0.0, "message": reason}

    # --- the steps ------------------------------------------------------------------------------
    def _evaluate(self, step: str, model_key: str, model_file: Path) -> dict[str, Any]:
        overrides = [
            f"evaluate.{model_key}={_quote(model_file)}",
            f"evaluate.results_dir={_quote(self.best_dir / step)}",
        ]
        if model_key == "checkpoint":
            overrides.append("evaluate.trt_engine=''")
        outcome, entry = self._run(step, "evaluate", overrides)
        entry["data_source"] = self.data_source
        entry["metrics"] = {k: v for k, v in outcome.kpi.items() if k.startswith("test_")}
        results = self.best_dir / step / "results.json"
        if outcome.state == SUCCESS and results.is_file():
            entry["results_file"] = str(results)
        return entry

    def _export(self) -> dict[str, Any]:
        onnx = self.best_dir / "export" / "model.onnx"
        outcome, entry = self._run(
            "export",
            "export",
            [
                f"export.checkpoint={_quote(self.checkpoint)}",
                f"export.onnx_file={_quote(onnx)}",
                f"export.results_dir={_quote(self.best_dir / 'export')}",
            ],
        )
        if outcome.state == SUCCESS:
            if not onnx.is_file():
                entry.update(state=FAILED, error=f"export reported success but {onnx} does not exist")
            else:
                entry["onnx_file"] = str(onnx)
        if "onnx_max_abs_diff" in outcome.kpi:
            entry["max_diff"] = outcome.kpi["onnx_max_abs_diff"]
        return entry

    def _engine(self, onnx: Path) -> dict[str, Any]:
        engine = self.best_dir / "gen_trt_engine" / "model.engine"
        outcome, entry = self._run(
            "gen_trt_engine",
            "gen_trt_engine",
            [
                f"gen_trt_engine.onnx_file={_quote(onnx)}",
                f"gen_trt_engine.trt_engine={_quote(engine)}",
                f"gen_trt_engine.results_dir={_quote(self.best_dir / 'gen_trt_engine')}",
            ],
        )
        if outcome.state == SUCCESS:
            if engine.is_file():
                entry["engine_file"] = str(engine)
            else:
                entry.update(
                    state=FAILED, error=f"gen_trt_engine reported success but {engine} does not exist"
                )
        return entry

    def run(self) -> dict[str, Any]:
        """Run every step (each recorded as it ends); returns the ``pipeline`` section."""
        self.best_dir.mkdir(parents=True, exist_ok=True)
        spec_path = self.best_dir / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(self.spec, sort_keys=False), encoding="utf-8")
        note = None
        if self.data_source == "val":
            note = (
                "dataset.test_data_sources is not set: the best model is evaluated on "
                "dataset.val_data_sources (the data the search selected it on, so the score is optimistic)"
            )
            print(f"pipeline: {note}", flush=True)
        self.steps = {}
        self._save(
            status="RUNNING",
            trial=self.best.get("trial"),
            checkpoint=str(self.checkpoint),
            spec=str(spec_path),
            data_source=self.data_source,
            started=time.time(),
            **({"note": note} if note else {}),
            **({"overrides": self.overrides} if self.overrides else {}),
        )
        which = "best trial" if self.key is None else "Pareto front trial"
        print(f"pipeline: {which} {self.best.get('trial')} -> {self.best_dir}", flush=True)
        try:
            self._record("evaluate", self._evaluate("evaluate", "checkpoint", self.checkpoint))
            export = self._record("export", self._export())
            if export["state"] != SUCCESS:
                why = f"needs the ONNX model, and export {export['state']}: {export.get('error') or export.get('message')}"
                self._record("gen_trt_engine", self._skipped(why))
                self._record("engine_evaluate", self._skipped(why))
            else:
                onnx = Path(export["onnx_file"])
                engine = self._record("gen_trt_engine", self._engine(onnx))
                built = engine["state"] == SUCCESS
                entry = self._evaluate(
                    "engine_evaluate", "trt_engine", Path(engine["engine_file"]) if built else onnx
                )
                entry["model"] = "engine" if built else "onnx"
                entry["deployed_model"] = engine["engine_file"] if built else str(onnx)
                if entry["state"] == SUCCESS and measures_latency(self.record.data):
                    built_engine = Path(engine["engine_file"]) if built else None
                    entry.update(
                        deployed_latency(
                            self.record.folder, self.best_dir, self.spec, entry, onnx, built_engine
                        )
                    )
                self._record("engine_evaluate", entry)
        except KeyboardInterrupt:
            self._save(status="STOPPED", finished=time.time())
            raise
        failed = [s for s in STEPS if (self.steps.get(s) or {}).get("state") == FAILED]
        self._save(status="FAILED" if failed else "FINISHED", failed=failed, finished=time.time())
        return copy.deepcopy(self.steps)
