"""The MLflow store a sweep logs to, and writes that can be repeated without duplicating anything.

Where: ``sqlite:///<results_dir>/mlflow.db`` with artifacts in ``<results_dir>/mlartifacts`` unless a
tracking URI is given (``--tracking-uri`` or ``MLFLOW_TRACKING_URI``). Which runs: ``<sweep>/tracking.json``
remembers the parent run, the trial runs and the pipeline-step runs, so a resumed sweep and
``automl sync`` continue the same runs. Every write here checks what the store already holds first
(params present, metric steps present, artifacts present), so running it twice changes nothing.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

from automl.launch.status_tail import epoch_report
from automl.results.summary import write_json_atomic

__all__ = [
    "ARTIFACT_DIR",
    "DB_FILE",
    "TAG_KIND",
    "TAG_STEP",
    "TAG_SWEEP",
    "TAG_TRIAL",
    "RunWriter",
    "default_tracking_uri",
    "epoch_metrics",
    "finite_float",
    "flatten",
    "read_ids",
    "resolve_tracking_uri",
    "status_epochs",
    "write_ids",
]

IDS_FILE = "tracking.json"
DB_FILE = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
# The tags that identify our runs in any store (what sync searches by when tracking.json has no id).
TAG_SWEEP = "automl.sweep.loop"
TAG_KIND = "automl.kind"  # sweep | trial | step
TAG_TRIAL = "automl.trial"
TAG_STEP = "automl.step"
PARENT_TAG = "mlflow.parentRunId"
KIND_TAG = "mlflow.experimentKind"
# status.json kpi names -> metric names; "seconds" is what status_tail makes of time_per_epoch.
EPOCH_METRICS = {
    "val_mAP50": "val_mAP50",
    "val_mAP": "val_mAP",
    "val_loss": "val_loss",
    "train_loss": "train_loss",
    "lr": "lr",
    "seconds": "epoch_seconds",
    "epoch_seconds": "epoch_seconds",
}
# A dead server must not stall a sweep: a short timeout and no retries, unless the user set them.
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}


def default_tracking_uri(results_dir: Path) -> str:
    return f"sqlite:///{Path(results_dir).resolve() / DB_FILE}"


def resolve_tracking_uri(tracking_uri: str | None, results_dir: Path) -> str:
    """The explicit URI, else ``MLFLOW_TRACKING_URI``, else the SQLite store under the results root."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(results_dir)
    if uri.startswith(("http://", "https://")):
        for key, value in HTTP_ENV.items():
            os.environ.setdefault(key, value)
    return uri


def is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///")


def read_ids(sweep_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(sweep_dir) / IDS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_ids(sweep_dir: Path, ids: Mapping[str, Any]) -> None:
    write_json_atomic(Path(sweep_dir) / IDS_FILE, dict(ids))


def finite_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted keys (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def status_epochs(status_file: Path) -> dict[int, dict[str, float]]:
    """Every validation in a status.json: epoch -> metric name -> value (only names we log)."""
    epochs: dict[int, dict[str, float]] = {}
    try:
        raw = Path(status_file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return epochs
    for text in raw.splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        report = epoch_report(line, "val_mAP50") if isinstance(line, dict) else None
        if report is not None:
            epochs[report.epoch] = epoch_metrics(report.metrics)
    return epochs


def epoch_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = EPOCH_METRICS.get(str(key))
        number = finite_float(value)
        if name is not None and number is not None:
            out[name] = number
    return out


class RunWriter:
    """An ``MlflowClient`` plus idempotent writes, with the known metric steps cached per run."""

    def __init__(self, tracking_uri: str, experiment: str, results_dir: Path):
        self.uri = tracking_uri
        self.experiment = experiment
        self.results_dir = Path(results_dir)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None
        self._steps: dict[tuple[str, str], set[int]] = {}

    # --- experiment and runs ------------------------------------------------------------------
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                experiment_id = found.experiment_id
                kind = found.tags.get(KIND_TAG)
            else:
                location = None
                if is_local_sqlite(self.uri):
                    location = (self.results_dir.resolve() / ARTIFACT_DIR).as_uri()
                experiment_id = self.client.create_experiment(self.experiment, artifact_location=location)
                kind = None
            if kind is None:  # the UI then opens on the runs table, not on the GenAI trace pages
                self.client.set_experiment_tag(experiment_id, KIND_TAG, "custom_model_development")
            self._experiment_id = experiment_id
        return self._experiment_id

    def live_run(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        try:
            run = self.client.get_run(run_id)
        except Exception:
            return False
        return run.info.lifecycle_stage == "active" and run.info.experiment_id == self.experiment_id()

    def find_run(self, tags: Mapping[str, str]) -> str | None:
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = self.client.search_runs([self.experiment_id()], filter_string=query, max_results=5)
        return runs[0].info.run_id if runs else None

    def ensure_run(
        self, known_id: str | None, tags: Mapping[str, str], name: str, parent: str | None
    ) -> tuple[str, bool]:
        """(run id, created): the remembered run, else the run with these tags, else a new one."""
        if self.live_run(known_id):
            return str(known_id), False
        found = self.find_run(tags)
        if found is not None:
            return found, False
        all_tags = dict(tags)
        if parent:
            all_tags[PARENT_TAG] = parent
        run = self.client.create_run(self.experiment_id(), tags=all_tags, run_name=name)
        self._steps.update({(run.info.run_id, key): set() for key in set(EPOCH_METRICS.values())})
        return run.info.run_id, True

    def set_status(self, run_id: str, status: str) -> None:
        if self.client.get_run(run_id).info.status == status:
            return
        if status == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status=status)

    # --- params, tags, metrics ----------------------------------------------------------------
    def log_params_once(self, run_id: str, params: Mapping[str, Any]) -> dict[str, str]:
        """Logs params not yet on the run; a name already there with another value becomes a tag.

        Returns what was newly logged (name -> text).
        """
        present = self.client.get_run(run_id).data.params
        new: dict[str, str] = {}
        changed: dict[str, str] = {}
        for key, value in params.items():
            name = str(key)[:MAX_ENTITY_KEY_LENGTH]
            text = _text(value, MAX_PARAM_VAL_LENGTH)
            if name not in present:
                new[name] = text
            elif present[name] != text:
                changed[name] = text
        items = [Param(k, v) for k, v in new.items()]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])
        if changed:
            self.set_tags(run_id, {f"changed.{k}": v for k, v in changed.items()})
        return new

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        items = [
            RunTag(str(k)[:MAX_ENTITY_KEY_LENGTH], _text("" if v is None else v, MAX_TAG_VAL_LENGTH))
            for k, v in tags.items()
        ]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, tags=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])

    def _known_steps(self, run_id: str, key: str) -> set[int]:
        if (run_id, key) not in self._steps:
            history = self.client.get_metric_history(run_id, key)
            self._steps[(run_id, key)] = {int(m.step) for m in history}
        return self._steps[(run_id, key)]

    def log_steps(self, run_id: str, rows: Mapping[int, Mapping[str, float]]) -> int:
        """Logs each (metric, step) that the run does not hold yet; returns how many points were added."""
        metrics: list[Metric] = []
        now = int(time.time() * 1000)
        for step, values in sorted(rows.items()):
            for key, value in values.items():
                if int(step) not in self._known_steps(run_id, key):
                    metrics.append(Metric(key, float(value), now, int(step)))
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])
        for metric in metrics:
            self._steps[(run_id, metric.key)].add(metric.step)
        return len(metrics)

    def log_values_once(self, run_id: str, values: Mapping[str, Any]) -> int:
        """Single-valued metrics (step 0), logged when absent or different from the latest value."""
        latest = self.client.get_run(run_id).data.metrics
        metrics = []
        now = int(time.time() * 1000)
        for key, value in values.items():
            number = finite_float(value)
            if number is not None and latest.get(key) != number:
                metrics.append(Metric(str(key)[:MAX_ENTITY_KEY_LENGTH], number, now, 0))
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)
        return len(metrics)

    # --- artifacts ----------------------------------------------------------------------------
    def artifact_names(self, run_id: str, folder: str | None = None) -> set[str]:
        return {Path(a.path).name for a in self.client.list_artifacts(run_id, folder)}

    def log_files_once(
        self, run_id: str, files: Iterable[Path], folder: str | None = None, replace: bool = False
    ) -> int:
        """Uploads the files that exist and that the run does not hold yet (all of them with replace)."""
        present = set() if replace else self.artifact_names(run_id, folder)
        count = 0
        for path in files:
            path = Path(path)
            if path.is_file() and path.name not in present:
                self.client.log_artifact(run_id, str(path), folder)
                count += 1
            elif path.is_dir() and path.name not in present:
                self.client.log_artifacts(run_id, str(path), f"{folder}/{path.name}" if folder else path.name)
                count += 1
        return count

    def log_text_once(self, run_id: str, text: str, name: str, replace: bool = False) -> int:
        folder = str(Path(name).parent) if "/" in name else None
        if not replace and Path(name).name in self.artifact_names(run_id, folder):
            return 0
        self.client.log_text(run_id, text, name)
        return 1
