"""What ``rtdetr evaluate`` / ``inference`` run: ``<action>.trt_engine`` (a deployed .onnx file in ONNX
Runtime or a TensorRT engine, ``model.deploy.deployed_model``) when set, else ``<action>.checkpoint``
loaded into the spec's network (``model.checkpoints.trained_model``), at ``<action>.precision``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from model.config.defaults import spec_section
from model.errors import ConfigError

__all__ = ["ModelToRun", "model_to_run", "run_precision"]


@dataclass
class ModelToRun:
    """What ``rtdetr evaluate``/``inference`` run: a checkpoint's network or a deployed model.

    ``spec`` is the spec to build the data pipeline from: for a deployed model its
    ``eval_spatial_size`` is the size the file was exported for.
    """

    model: nn.Module
    spec: dict[str, Any]
    path: str
    source: str
    precision: str
    summary: str
    deployed: bool


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def run_precision(spec: Mapping[str, Any], action: str, device: Any, deployed: bool) -> str:
    """``<action>.precision`` checked against the device and the kind of model.

    bf16 runs the PyTorch model under bf16 autocast (on CPUs with AVX512-BF16/AMX about twice as
    fast as fp32, see bench/RESULTS.md); fp16 needs a GPU. A deployed model's precision is fixed
    when it is built, so only fp32 is accepted with ``<action>.trt_engine``.
    """
    precision = str(spec_section(spec, action)["precision"])
    device_type = getattr(device, "type", str(device))
    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"{action}.precision: {precision!r}; use fp32, bf16 or fp16")
    if deployed and precision != "fp32":
        raise ConfigError(
            f"{action}.precision: {precision} applies to a checkpoint run by PyTorch; the precision of "
            f"{action}.trt_engine is fixed when it is built (gen_trt_engine.tensorrt.data_type; ONNX Runtime "
            f"runs the exported fp32 graph). Set {action}.precision=fp32"
        )
    if precision == "fp16" and device_type != "cuda":
        raise ConfigError(f"{action}.precision: fp16 needs a GPU; on the CPU use bf16 or fp32")
    if precision == "bf16" and device_type == "cpu" and not _cpu_has_bf16():
        print(
            f"warning: {action}.precision=bf16 on a CPU without AVX512-BF16/AMX: bf16 is emulated and may "
            "be slower than fp32",
            file=sys.stderr,
            flush=True,
        )
    return precision


def model_to_run(spec: Mapping[str, Any], action: str, device: Any) -> ModelToRun:
    """``<action>.trt_engine`` (.onnx via ONNX Runtime, or a TensorRT engine) when set, else
    ``<action>.checkpoint`` loaded into the spec's network (``load_trained_model``)."""
    from model.deploy.deployed_model import deployed_model_path, load_deployed_model
    from model.deploy.onnx_export import spec_for_size

    engine = deployed_model_path(spec, action)
    if engine is not None:
        precision = run_precision(spec, action, device, deployed=True)
        model, (height, width) = load_deployed_model(spec, action, device)
        runner = "ONNX Runtime" if model.kind == "onnx" else "TensorRT"
        batch = model.fixed_batch or "dynamic"
        summary = f"Running {engine} with {runner} at {height}x{width} (batch {batch})."
        return ModelToRun(
            model, spec_for_size(spec, height, width), str(engine), runner, precision, summary, True
        )
    from model.checkpoints.trained_model import load_trained_model

    precision = run_precision(spec, action, device, deployed=False)
    model, report = load_trained_model(spec, action)
    summary = report.summary() + (f" Precision {precision} (autocast)." if precision != "fp32" else "")
    return ModelToRun(model, dict(spec), str(report.path), report.source, precision, summary, False)
