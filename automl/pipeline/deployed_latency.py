"""The deployed model's latency, in the pipeline of a sweep that measures latency.

In a sweep with ``--max-latency-ms`` or latency among ``--objectives``, the search measured each
trial's *untrained* network; the pipeline's ``engine_evaluate`` step then also times the file it
deployed, the exported ONNX model, with ``rtdetr latency --onnx`` under ONNX Runtime at batch 1 and
the export size, with the threads the search measured that architecture with (from
``<sweep>/latency.json``), so the two figures compare. When the pipeline built a TensorRT engine
(the deployed file then), the engine is timed on the GPU too (``rtdetr latency --engine``). The
deployed file's figure goes in the step's entry as ``latency`` (runtime, threads or device, size,
runs) and ``metrics.latency_ms`` beside its mAP; with an engine, the ONNX figure is kept as
``onnx_latency`` and ``metrics.onnx_latency_ms``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from automl.launch.latency_gate import LatencyGate, LatencyUnmeasured, run_latency

__all__ = ["deployed_latency", "measures_latency"]


def measures_latency(summary: Mapping[str, Any]) -> bool:
    """Whether the sweep of this summary.json measured latency (a limit, or an objective)."""
    settings = summary.get("settings") or {}
    return bool(summary.get("objectives") or settings.get("objectives") or settings.get("max_latency_ms"))


def deployed_latency(
    sweep_folder: Path,
    pipeline_dir: Path,
    spec: Mapping[str, Any],
    entry: Mapping[str, Any],
    onnx: Path,
    engine: Path | None = None,
) -> dict[str, Any]:
    """The fields ``entry`` (an ``engine_evaluate`` step) gains: ``latency`` and ``metrics.latency_ms``,
    or ``latency_error`` when the ONNX model could not be timed (the evaluation's result stands)."""
    threads = LatencyGate(None, sweep_folder).threads_for(dict(spec))
    spec_path = pipeline_dir / "spec.yaml"
    if not spec_path.is_file():
        spec_path.write_text(yaml.safe_dump(dict(spec), sort_keys=False), encoding="utf-8")
    logs = pipeline_dir / "logs"
    try:
        result = run_latency(spec_path, logs / "latency.log", threads, onnx_file=onnx)
        on_gpu = run_latency(spec_path, logs / "engine_latency.log", engine_file=engine) if engine else None
    except (LatencyUnmeasured, OSError) as exc:
        print(f"pipeline latency: {exc}", flush=True)
        return {"latency_error": str(exc)}
    for timed in (result, on_gpu) if on_gpu else (result,):
        size = "x".join(str(s) for s in timed.get("size") or [])
        where = timed.get("device") or f"{timed.get('threads')} threads"
        print(
            f"pipeline latency: {timed.get('model')} {timed['latency_ms']:.2f} ms ({timed.get('runtime')}, "
            f"{where}, batch 1, {size})",
            flush=True,
        )
    metrics = dict(entry.get("metrics") or {})
    if on_gpu is None:
        return {"latency": result, "metrics": {**metrics, "latency_ms": float(result["latency_ms"])}}
    metrics.update(latency_ms=float(on_gpu["latency_ms"]), onnx_latency_ms=float(result["latency_ms"]))
    return {"latency": on_gpu, "onnx_latency": result, "metrics": metrics}
