"""What a sweep looks like in MLflow: the sweep run, one child run per trial and per pipeline step.

``SweepLog`` writes it from the sweep's own records (summary entries, status.json, trial files), and
every write is idempotent (see ``tracking_store``), so the live ``Tracker`` and ``automl sync`` share
it: the tracker calls it as events happen, sync replays the whole folder. It raises on store errors;
the tracker is what turns those into warnings.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from automl.launch.status_tail import trial_status_file
from automl.results.trial_record import TrialState
from automl.tracking.pareto_plot import write_front
from automl.tracking.plots import write_plots
from automl.tracking.store import (
    TAG_KIND,
    TAG_STEP,
    TAG_SWEEP,
    TAG_TRIAL,
    RunWriter,
    epoch_metrics,
    finite_float,
    flatten,
    read_ids,
    status_epochs,
    write_ids,
)

__all__ = ["TERMINAL", "SweepLog"]

LOG_TAIL_LINES = 200
TERMINAL = {
    TrialState.COMPLETE.value: "FINISHED",
    TrialState.PRUNED.value: "FINISHED",
    TrialState.FAIL.value: "FAILED",
}
SWEEP_END = {"FINISHED": "FINISHED", "STOPPED": "KILLED", "FAILED": "FAILED"}
STEP_OK = {"FINISHED", "SUCCESS", "COMPLETE", "DONE", "OK", "SKIPPED"}


def space_table(space: Mapping[str, Any]) -> str:
    """The searched and excluded parameters as a plain-text table."""
    rows = [("parameter", "kind", "range / choices")]
    for param in space.get("params") or []:
        if not isinstance(param, Mapping):
            continue
        choices = param.get("choices")
        if choices is not None:
            span = ", ".join(str(c) for c in choices)
        else:
            span = f"[{param.get('low')}, {param.get('high')}]" + (" log" if param.get("log") else "")
        rows.append((str(param.get("name")), str(param.get("kind", param.get("type", ""))), span))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    excluded = space.get("excluded") or []
    if excluded:
        lines.append("")
        lines.append("left out:")
        for item in excluded:
            if isinstance(item, Mapping):
                lines.append(f"  {item.get('name')}: {item.get('reason', '')}")
            else:
                lines.append(f"  {item}")
    return "\n".join(lines) + "\n"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return "\n".join(text.splitlines()[-lines:]) + "\n"


class SweepLog:
    """The runs of one sweep folder in one store; run ids live in ``<sweep>/tracking.json``."""

    def __init__(self, writer: RunWriter, sweep_dir: Path, name: str, model_name: str | None = None):
        self.writer = writer
        self.client = writer.client
        self.sweep_dir = Path(sweep_dir)
        self.name = name
        self.model_name = model_name or f"{writer.experiment}-rtdetr"
        ids = read_ids(self.sweep_dir)
        same_store = ids.get("tracking_uri") == writer.uri and ids.get("experiment") == writer.experiment
        self.ids: dict[str, Any] = ids if same_store else {}
        self.ids.update(tracking_uri=writer.uri, experiment=writer.experiment)
        self.ids.setdefault("trials", {})
        self.ids.setdefault("steps", {})
        self.params: dict[int, dict[str, Any]] = {}

    def save_ids(self) -> None:
        write_ids(self.sweep_dir, self.ids)

    # --- the sweep run ------------------------------------------------------------------------
    def parent(self) -> str:
        run_id, _ = self.writer.ensure_run(
            self.ids.get("parent_run_id"), {TAG_SWEEP: self.name, TAG_KIND: "sweep"}, self.name, None
        )
        if run_id != self.ids.get("parent_run_id"):
            self.ids["parent_run_id"] = run_id
            self.save_ids()
        return run_id

    def start(self, summary: Mapping[str, Any]) -> str:
        run_id = self.parent()
        policy = summary.get("policy") or {}
        algorithm = summary.get("algorithm") or {}
        self.writer.set_tags(
            run_id,
            {
                "sweep": self.name,
                "sweep.folder": str(self.sweep_dir.resolve()),
                "policy.decision": policy.get("decision", ""),
                "policy.reason": policy.get("reason", ""),
                "backend": summary.get("backend") or "",
                **{f"algorithm.{k}": v for k, v in algorithm.items() if v is not None},
            },
        )
        params = flatten(summary.get("settings") or {})
        if summary.get("max_epochs") is not None:
            params["max_epochs"] = summary["max_epochs"]
        self.writer.log_params_once(run_id, params)
        space = summary.get("space") or {}
        self.writer.log_text_once(run_id, json.dumps(space, indent=2, default=str), "space.json")
        self.writer.log_text_once(run_id, space_table(space), "space.txt")
        if summary.get("status", "RUNNING") == "RUNNING":
            self.writer.set_status(run_id, "RUNNING")
        return run_id

    # --- trials -------------------------------------------------------------------------------
    def trial(self, number: int, params: Mapping[str, Any] | None, folder: Path | None) -> str:
        key = str(number)
        run_id, created = self.writer.ensure_run(
            self.ids["trials"].get(key),
            {TAG_SWEEP: self.name, TAG_KIND: "trial", TAG_TRIAL: key},
            f"trial-{number:04d}",
            self.parent(),
        )
        if self.ids["trials"].get(key) != run_id:
            self.ids["trials"][key] = run_id
            self.save_ids()
        params = params if params is not None else self.params.get(number, {})
        self.params[number] = dict(params)
        if created or params:
            self.writer.log_params_once(run_id, params)
        if created and folder is not None:
            self.writer.set_tags(run_id, {"trial": number, "trial.folder": str(folder)})
        return run_id

    def trial_id(self, number: int) -> str:
        known = self.ids["trials"].get(str(number))
        return known if known else self.trial(number, None, None)

    def epoch(self, number: int, epoch: int, metrics: Mapping[str, Any]) -> int:
        return self.writer.log_steps(self.trial_id(number), {int(epoch): epoch_metrics(metrics)})

    def finish_trial(self, entry: Mapping[str, Any], fill_history: bool = True) -> str:
        number = int(entry["number"])
        folder = Path(entry["folder"]) if entry.get("folder") else self.sweep_dir / "trials" / f"{number:04d}"
        run_id = self.trial(number, entry.get("params") or {}, folder)
        if fill_history:
            self.writer.log_steps(run_id, status_epochs(trial_status_file(folder)))
        state = str(entry.get("state") or "")
        tags = {
            "state": state,
            "failure_class": entry.get("failure_class") or "",
            "reason": entry.get("error") or "",
        }
        if entry.get("parent") is not None:  # a PBT clone
            tags["pbt.parent"] = str(entry["parent"])
            tags["pbt.generation"] = str(entry.get("generation"))
            tags["pbt.resume_epoch"] = str(entry.get("resume_epoch"))
        self.writer.set_tags(run_id, tags)
        best = {
            "best_val_mAP50": entry.get("value"),
            "best_epoch": entry.get("best_epoch"),
            "seconds": entry.get("seconds"),
            "latency_ms": entry.get("latency_ms"),  # --max-latency-ms sweeps (None: not logged)
        }
        self.writer.log_values_once(run_id, best)
        self.writer.log_files_once(run_id, [folder / "spec.yaml"])
        status_file = trial_status_file(folder)
        self.writer.log_files_once(run_id, [status_file], status_file.parent.name)
        tail = log_tail(Path(entry.get("log") or folder / "trial.log"))
        if tail is not None:
            self.writer.log_text_once(run_id, tail, "trial_log_tail.txt", replace=True)
        if state in TERMINAL:
            self.writer.set_status(run_id, TERMINAL[state])
        return run_id

    # --- pipeline steps -----------------------------------------------------------------------
    def step(self, step: str, metrics: Mapping[str, Any], artifacts: Sequence[Path], status: str) -> str:
        run_id, _ = self.writer.ensure_run(
            self.ids["steps"].get(step),
            {TAG_SWEEP: self.name, TAG_KIND: "step", TAG_STEP: step},
            step,
            self.parent(),
        )
        if self.ids["steps"].get(step) != run_id:
            self.ids["steps"][step] = run_id
            self.save_ids()
        self.writer.set_tags(run_id, {"step": step, "status": status})
        self.writer.log_values_once(run_id, metrics)
        self.writer.log_files_once(run_id, [Path(p) for p in artifacts])
        ok = str(status).upper() in STEP_OK
        self.writer.set_status(run_id, "FINISHED" if ok else "FAILED")
        return run_id

    # --- the end of the sweep -----------------------------------------------------------------
    def finish(self, summary: Mapping[str, Any]) -> str:
        run_id = self.parent()
        best = summary.get("best") or {}
        if best:
            self.writer.log_params_once(
                run_id, {f"best.{k}": v for k, v in (best.get("params") or {}).items()}
            )
            self.writer.set_tags(run_id, {"best.trial": best.get("trial"), "best.metric": best.get("metric")})
            self.writer.log_values_once(
                run_id, {"best_val_mAP50": best.get("value"), "best_epoch": best.get("best_epoch")}
            )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "summary.json"
            path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
            self.writer.log_files_once(run_id, [path], replace=True)
            plots, note = write_plots(summary, self.sweep_dir, Path(tmp) / "plots")
            if plots:
                self.writer.log_files_once(run_id, plots, "plots", replace=True)
            self.writer.set_tags(run_id, {"plots": note})
            front = summary.get("pareto_front") or []
            if front:  # a multi-objective sweep: the front's plot and table, and a tag on its trials
                self.writer.log_files_once(
                    run_id, write_front(summary, Path(tmp) / "front"), "pareto", replace=True
                )
                self.writer.set_tags(run_id, {"pareto_front": ",".join(str(e["trial"]) for e in front)})
                numbers = {int(e["trial"]) for e in front}
                for t in (
                    summary.get("trials") or []
                ):  # a resumed sweep's front moves: every trained trial's tag
                    if t.get("state") == TrialState.COMPLETE.value:
                        on_front = "true" if t["number"] in numbers else "false"
                        self.writer.set_tags(self.trial_id(int(t["number"])), {"pareto_front": on_front})
        if best and best.get("trial") is not None:
            self.register_best(summary)
        status = summary.get("status")
        if status and status != "RUNNING":
            self.writer.set_status(run_id, SWEEP_END.get(str(status), "FAILED"))
        return run_id

    def register_best(self, summary: Mapping[str, Any]) -> Any:
        """The best trial's checkpoint (and ONNX file) as a new version of the registered model."""
        best = summary["best"]
        number = int(best["trial"])
        run_id = self.trial_id(number)
        files = [Path(best["checkpoint"])] if best.get("checkpoint") else []
        onnx = ((summary.get("pipeline") or {}).get("export") or {}).get("onnx_file")
        if onnx and Path(onnx).is_file():
            files.append(Path(onnx))
        files = [f for f in files if f.is_file()]
        if not files:
            return None
        self.writer.log_files_once(run_id, files, "model")
        tags = {
            "automl.sweep.loop": self.name,
            "automl.trial": str(number),
            "parent_run_id": self.parent(),
            "metric": str(best.get("metric", "val_mAP50")),
            "value": str(best.get("value")),
            "checkpoint": files[0].name,
        }
        for version in self.client.search_model_versions(f"name = '{self.model_name}'"):
            if version.run_id == run_id and version.tags.get("automl.sweep.loop") == self.name:
                return version
        try:
            self.client.get_registered_model(self.model_name)
        except Exception:
            self.client.create_registered_model(
                self.model_name,
                tags={"automl.experiment": self.writer.experiment},
                description="RT-DETR detectors tuned by `automl run`; one version per sweep's best trial.",
            )
        source = f"{self.client.get_run(run_id).info.artifact_uri}/model"
        metric = best.get("metric", "val_mAP50")
        description = f"sweep {self.name}, trial {number}: {metric} = {finite_float(best.get('value'))}"
        version = self.client.create_model_version(
            self.model_name, source, run_id=run_id, tags=tags, description=description
        )
        self.ids["model"] = {"name": self.model_name, "version": str(version.version)}
        self.save_ids()
        return version
