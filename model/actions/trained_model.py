"""The trained network that ``rtdetr evaluate`` and ``rtdetr inference`` run: ``<action>.checkpoint``.

The checkpoint must fit the model the spec builds exactly. A file trained with another
``dataset.num_classes`` (its class-head tensors have another shape) or another architecture
(other ``model.*`` keys) is a ``CheckpointError`` before any image is read, because the skipped
tensors would silently keep their random initial values. EMA weights are used when the file has
them (``load_weights`` prefers ``ema.module``). ``model_to_run`` picks ``<action>.trt_engine`` (a
deployed .onnx or TensorRT engine, ``model.deploy.deployed_model``) over the checkpoint when set.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from model.checkpoints import LoadReport, load_weights
from model.errors import CheckpointError, ConfigError

__all__ = [
    "ModelToRun",
    "check_no_deployed_model",
    "checkpoint_num_classes",
    "load_trained_model",
    "model_to_run",
    "run_precision",
]

# Tensors whose first dimension is the class count (the embedding has one extra padding row).
_CLASS_HEAD = re.compile(r"(^|\.)(enc_score_head|dec_score_head\.\d+)\.(weight|bias)$")
_DN_CLASS_EMBED = re.compile(r"(^|\.)denoising_class_embed\.weight$")
# BatchNorm step counters carry no weights: a file without them loads the same network.
_HARMLESS_MISSING = re.compile(r"num_batches_tracked$")


def check_no_deployed_model(spec: Mapping[str, Any], action: str) -> None:
    """Refuse to load a checkpoint while ``<action>.trt_engine`` names a deployed model: that file
    (.onnx or TensorRT engine) is what the action must run (``model.deploy.load_deployed_model``)."""
    section = spec.get(action) or {}
    engine = section.get("trt_engine")
    if engine and str(engine).strip() not in ("", "???"):
        raise ConfigError(
            f"{action}.trt_engine: {engine!r} is a deployed model, so {action}.checkpoint is not loaded; "
            f"run it with model.deploy.deployed_model.load_deployed_model, or clear {action}.trt_engine "
            f"(set it to '') to use {action}.checkpoint"
        )


def checkpoint_num_classes(report: LoadReport) -> int | None:
    """The class count of a checkpoint whose class-head tensors were skipped, else None."""
    for key, file_shape, _ in report.skipped:
        if _CLASS_HEAD.search(key) and file_shape:
            return int(file_shape[0])
    for key, file_shape, _ in report.skipped:
        if _DN_CLASS_EMBED.search(key) and file_shape:
            return int(file_shape[0]) - 1
    return None


def _check_fit(report: LoadReport, spec: Mapping[str, Any], action: str) -> None:
    path = report.path
    num_classes = int((spec.get("dataset") or {}).get("num_classes", 80))
    file_classes = checkpoint_num_classes(report)
    if file_classes is not None and file_classes != num_classes:
        raise CheckpointError(
            f"{action}.checkpoint: {path} was trained with {file_classes} classes (its class head has "
            f"{file_classes} outputs), but dataset.num_classes is {num_classes}. Set "
            f"dataset.num_classes={file_classes} to match the checkpoint (the category ids of the data "
            f"must stay below it), or give a checkpoint trained with dataset.num_classes={num_classes}."
        )
    if report.skipped:
        shown = ", ".join(f"{k} {list(f)} vs model {list(m)}" for k, f, m in report.skipped[:4])
        raise CheckpointError(
            f"{action}.checkpoint: {path} does not fit the model built from the spec: "
            f"{len(report.skipped)} tensors differ in shape ({shown}). Set the model.* keys (backbone, "
            "hidden_dim, feat_channels, num_queries, dec_layers, ...) to the values used in training; "
            "the training run's experiment.yaml lists them."
        )
    missing = [k for k in report.missing if not _HARMLESS_MISSING.search(k)]
    if missing:
        raise CheckpointError(
            f"{action}.checkpoint: {path} lacks {len(missing)} tensors the model needs (e.g. "
            f"{', '.join(missing[:4])}). Is it a checkpoint of another backbone or architecture? Set the "
            "model.* keys to the values used in training, or give the checkpoint of that training."
        )


def load_trained_model(spec: Mapping[str, Any], action: str) -> tuple[nn.Module, LoadReport]:
    """Build ``spec``'s network, load ``<action>.checkpoint`` into it and return it in eval mode.

    Raises:
        ConfigError: ``<action>.trt_engine`` is set (the deployed model replaces the checkpoint).
        CheckpointError: the file is missing or unreadable, or does not fit the model.
    """
    from model.rtdetr import build_model

    check_no_deployed_model(spec, action)
    path = (spec.get(action) or {}).get("checkpoint")
    if not path or str(path).strip() in ("", "???"):
        raise CheckpointError(f"{action}.checkpoint is not set; give the trained checkpoint (.pth) to use")
    from model.quantize.quantized_file import load_if_quantized

    quantized = load_if_quantized(spec, action, str(path))
    if quantized is not None:
        return quantized
    model = build_model(spec)
    report = load_weights(model, str(path))
    _check_fit(report, spec, action)
    return model.eval(), report


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
    precision = str((spec.get(action) or {}).get("precision") or "fp32")
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
    precision = run_precision(spec, action, device, deployed=False)
    model, report = load_trained_model(spec, action)
    summary = report.summary() + (f" Precision {precision} (autocast)." if precision != "fp32" else "")
    return ModelToRun(model, dict(spec), str(report.path), report.source, precision, summary, False)
