"""The latency constraint of a sweep (``--max-latency-ms``): a trial's network is measured before it
trains, and one that is too slow ends at once, untrained.

The measurement is ``rtdetr latency`` on the trial's own spec (the untrained network, exported to
ONNX at batch 1 and the eval size, the median of 20 ONNX Runtime calls on the CPU, the quietest of 3 rounds; see
``model/deploy/latency.py``), with the trial's CPU share as threads. Latency depends on the
architecture and the input size only, so each architecture is measured once per sweep: the results
are kept in ``<sweep>/latency.json`` under a key of the spec's ``model`` section (weight files left
out), the number of classes and the eval size, and a resumed sweep reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import yaml

from automl.errors import AutomlError
from automl.results.summary import write_json_atomic
from automl.spec import get_dotted, rtdetr_command

__all__ = ["INFEASIBLE", "LatencyGate", "LatencyUnmeasured", "architecture_key", "run_latency"]

INFEASIBLE = "infeasible"  # the failure class of a trial over the latency limit


class LatencyUnmeasured(AutomlError):
    """``rtdetr latency`` could not measure the trial's network; the message says why."""


def architecture_key(spec: dict[str, Any]) -> str:
    """The key the latency of ``spec`` is cached under (what it depends on, nothing else)."""
    model = {k: v for k, v in (spec.get("model") or {}).items() if "path" not in k}
    size = get_dotted(spec, "dataset.augmentation.eval_spatial_size", None)
    text = json.dumps(
        {"model": model, "num_classes": get_dotted(spec, "dataset.num_classes", None), "size": size},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_latency(
    spec_path: Path,
    log_file: Path,
    threads: int | None = None,
    onnx_file: Path | None = None,
    engine_file: Path | None = None,
) -> dict[str, Any]:
    """``rtdetr latency`` of ``spec_path``'s untrained network, of the exported ``onnx_file`` or of
    the TensorRT ``engine_file``; its JSON result (latency_ms, runtime, threads, size, ...). Its
    output goes to ``log_file``."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [*rtdetr_command(), "latency", "-e", str(spec_path)]
    if onnx_file is not None:
        command += ["--onnx", str(onnx_file)]
    if engine_file is not None:
        command += ["--engine", str(engine_file)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=600)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise LatencyUnmeasured(f"rtdetr latency exited {proc.returncode}: {reason}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class LatencyGate:
    def __init__(self, limit_ms: float | None, sweep_folder: Path, threads: int | None = None):
        """``limit_ms`` None: measured only (latency is an objective), never refused."""
        self.limit_ms = None if limit_ms is None else float(limit_ms)
        self.path = Path(sweep_folder) / "latency.json"
        self.threads = threads
        self.lock = threading.Lock()
        self.measuring: dict[str, threading.Lock] = {}
        try:
            self.cache: dict[str, dict[str, Any]] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.cache = {}

    def measure(self, spec: dict[str, Any], trial_dir: Path) -> tuple[dict[str, Any], bool]:
        """``(measurement, cached)`` for the trial's spec; one architecture is measured once, even by
        trials that ask at the same time."""
        key = architecture_key(spec)
        with self.lock:
            if key in self.cache:
                return self.cache[key], True
            gate = self.measuring.setdefault(key, threading.Lock())
        with gate:
            with self.lock:
                if key in self.cache:
                    return self.cache[key], True
            result = self._run(spec, trial_dir)
            with self.lock:
                self.cache[key] = result
                write_json_atomic(self.path, self.cache)
        return result, False

    def _run(self, spec: dict[str, Any], trial_dir: Path) -> dict[str, Any]:
        trial_dir.mkdir(parents=True, exist_ok=True)
        spec_path = trial_dir / "latency_spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return run_latency(spec_path, trial_dir / "latency.log", self.threads)

    def threads_for(self, spec: dict[str, Any]) -> int | None:
        """The threads the search measured ``spec``'s architecture with (None: not measured)."""
        threads = (self.cache.get(architecture_key(spec)) or {}).get("threads")
        return int(threads) if threads else None

    def verdict(self, result: dict[str, Any]) -> str | None:
        """Why the measured network breaks the limit, or None when it is within it."""
        latency = float(result["latency_ms"])
        if self.limit_ms is None or latency <= self.limit_ms:
            return None
        size = "x".join(str(s) for s in result.get("size") or [])
        return (
            f"latency {latency:.2f} ms ({result.get('runtime')}, {result.get('threads')} threads, batch 1, "
            f"{size}) is over --max-latency-ms {self.limit_ms:g}; not trained"
        )
