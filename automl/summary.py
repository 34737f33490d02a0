"""``<sweep>/summary.json``: the sweep's record, rewritten atomically after every trial event.

Layout: ``name``, ``status`` (RUNNING|FINISHED|FAILED|STOPPED), ``policy`` {decision, reason, message},
``backend``, ``algorithm``, ``settings``, ``config`` (what ``--resume`` needs), ``space`` (searched and
excluded parameters), ``trials`` [{number, state, params, value (best val_mAP50), best_epoch,
last_epoch, checkpoint, seconds, failure_class, error, folder; with Ray also node_id, node_ip,
hostname, ray_trial_id; with ``automl worker`` processes also host and worker}], ``best`` {...},
``pipeline`` {evaluate, export, gen_trt_engine, engine_evaluate: state, metrics, seconds, ...} and,
with Ray, ``ray`` {address, scheduler, ...}.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(_json_safe(data), indent=2), encoding="utf-8")
    os.replace(tmp, path)


def read_summary(sweep: str | Path) -> dict[str, Any]:
    from automl.errors import AutomlError

    path = Path(sweep) / SUMMARY
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AutomlError(f"{sweep}: no {SUMMARY} here; give the folder `automl run` printed") from None
    except json.JSONDecodeError as exc:
        raise AutomlError(f"{path}: unreadable ({exc})") from None


class SweepRecord:
    """Thread-safe holder of the summary document."""

    def __init__(self, folder: Path, data: dict[str, Any]):
        self.folder = folder
        self.path = folder / SUMMARY
        self.data = data
        self._lock = threading.Lock()
        self.data.setdefault("trials", [])
        self.data.setdefault("pipeline", {})

    def save(self) -> None:
        with self._lock:
            self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json_atomic(self.path, self.data)

    def upsert_trial(self, entry: dict[str, Any]) -> None:
        with self._lock:
            trials = self.data["trials"]
            for i, old in enumerate(trials):
                if old["number"] == entry["number"]:
                    trials[i] = {**old, **entry}
                    break
            else:
                trials.append(entry)
            trials.sort(key=lambda t: t["number"])
        self.save()

    def set(self, **fields: Any) -> None:
        with self._lock:
            self.data.update(fields)
        self.save()

    def trials(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(t) for t in self.data["trials"]]
