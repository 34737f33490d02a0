"""Latency of the deployable artefact, measured before any training.

Latency depends on the architecture and the input size, not on the trained weights, so it is
measured on the untrained network described by a spec: built for ``eval_spatial_size``, RepVGG
blocks fused, exported to ONNX at batch 1 as ``rtdetr export`` writes it, and run under ONNX
Runtime on the CPU. The figure is the median of ``runs`` calls after ``warmup`` calls, with the
runtime, its intra-op threads and the size recorded beside it (``rtdetr latency``). Seconds of work,
so a latency-constrained search can reject an architecture before it trains.

The calls are made in ``rounds`` rounds (default 3) a quarter of a second apart, and the round with
the lowest median is reported (``round_medians`` lists them all): a burst of other work on the
machine (a finishing trial, a data loader) slows a whole round, and the quietest round is the
network's own latency; one noisy figure would otherwise reject a fast architecture.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.deploy.onnx_export import (
    INPUT_NAME,
    OUTPUT_NAMES,
    check_export_size,
    export_onnx,
    onnxruntime_session,
)
from model.errors import ConfigError

__all__ = ["architecture_key", "measure_latency"]


def _export_size(spec: Mapping[str, Any]) -> tuple[int, int]:
    size = ((spec.get("dataset") or {}).get("augmentation") or {}).get("eval_spatial_size") or [640, 640]
    height, width = int(size[0]), int(size[1])
    check_export_size(height, width, prefix="dataset.augmentation.eval_spatial_size")
    return height, width


def architecture_key(spec: Mapping[str, Any]) -> str:
    """What the latency depends on: the ``model`` section (without weight files), the number of
    classes and the export size, as a short digest (two specs with the same key run equally fast)."""
    model = {k: v for k, v in (spec.get("model") or {}).items() if "path" not in k}
    dataset = spec.get("dataset") or {}
    text = json.dumps(
        {"model": model, "num_classes": dataset.get("num_classes"), "size": list(_export_size(spec))},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def measure_latency(
    spec: Mapping[str, Any],
    *,
    runs: int = 20,
    warmup: int = 5,
    threads: int | None = None,
    onnx_file: Path | None = None,
    rounds: int = 3,
    engine_file: Path | None = None,
) -> dict[str, Any]:
    """ONNX Runtime latency of the spec's network at batch 1 (see the module docstring); with
    ``onnx_file``, of that exported model (the deployed file) instead of the untrained network;
    with ``engine_file``, of that TensorRT engine on the GPU (``runtime`` tensorrt)."""
    from model.network.rtdetr import build_model

    if runs < 1 or warmup < 0 or rounds < 1:
        raise ConfigError(
            f"latency: runs and rounds must be at least 1 and warmup at least 0 (got {runs}, {rounds}, {warmup})"
        )
    height, width = _export_size(spec)
    threads = int(threads or os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())
    runtime = "onnxruntime-cpu"
    if engine_file is not None:
        if not Path(engine_file).is_file():
            raise ConfigError(
                f"--engine: {engine_file} does not exist; give the file rtdetr gen_trt_engine wrote"
            )
        timed = _timed_engine_rounds(Path(engine_file), height, width, runs, warmup, rounds)
        measured = {"model": str(engine_file), "device": torch.cuda.get_device_name(0)}
        runtime = "tensorrt"
    elif onnx_file is not None:
        if not Path(onnx_file).is_file():
            raise ConfigError(f"--onnx: {onnx_file} does not exist; give the file rtdetr export wrote")
        timed = _timed_rounds(Path(onnx_file), height, width, runs, warmup, threads, rounds)
        measured = {"model": str(onnx_file)}
    else:
        torch.manual_seed(0)
        model = build_model(spec).eval()
        with tempfile.TemporaryDirectory(prefix="rtdetr-latency-") as tmp:
            path = export_onnx(model, Path(tmp) / "model.onnx", height=height, width=width, batch_size=1)
            timed = _timed_rounds(path, height, width, runs, warmup, threads, rounds)
        measured = {"model": "untrained"}
    medians = [statistics.median(times) for times in timed]
    times = sorted(timed[medians.index(min(medians))])
    return {
        "latency_ms": round(statistics.median(times), 3),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3),
        "min_ms": round(times[0], 3),
        "runtime": runtime,
        "threads": threads,
        "batch": 1,
        "size": [height, width],
        "runs": runs,
        "rounds": rounds,
        "round_medians": [round(m, 3) for m in medians],
        "warmup": warmup,
        "architecture": architecture_key(spec),
        **measured,
    }


def _timed_rounds(
    path: Path, height: int, width: int, runs: int, warmup: int, threads: int, rounds: int
) -> list[list[float]]:
    """Milliseconds of each of ``runs`` calls of the ONNX model at batch 1, after ``warmup`` calls,
    in each of ``rounds`` rounds (a quarter of a second apart)."""
    try:
        session = onnxruntime_session(path, threads=threads)
    except Exception as exc:  # ONNX Runtime's reason (not an ONNX file, a broken one)
        raise ConfigError(f"{path}: ONNX Runtime cannot load it ({type(exc).__name__}: {exc})") from None
    images = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    return _rounds(lambda: session.run(list(OUTPUT_NAMES), {INPUT_NAME: images}), runs, warmup, rounds)


def _timed_engine_rounds(
    path: Path, height: int, width: int, runs: int, warmup: int, rounds: int
) -> list[list[float]]:
    """Milliseconds of each call of the TensorRT engine at batch 1 (images already on the GPU,
    outputs synchronized), in ``rounds`` rounds; ConfigError without TensorRT or a GPU."""
    from model.deploy.trt_engine_runner import TrtEngineRunner

    runner = TrtEngineRunner(path, device="cuda")
    images = torch.rand(1, 3, height, width, device="cuda")
    return _rounds(lambda: runner(images), runs, max(1, warmup), rounds)  # synchronized per call


def _rounds(call: Callable[[], object], runs: int, warmup: int, rounds: int) -> list[list[float]]:
    """Milliseconds of each of ``runs`` calls, after ``warmup`` calls, in each of ``rounds`` rounds
    a quarter of a second apart."""
    for _ in range(warmup):
        call()
    timed = []
    for number in range(rounds):
        if number:
            time.sleep(0.25)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000.0)
        timed.append(times)
    return timed
