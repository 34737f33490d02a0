"""The trained network an action runs from ``<action>.checkpoint`` (evaluate, inference, export, quantize).

The checkpoint must fit the model the spec builds exactly. A file trained with another
``dataset.num_classes`` (its class-head tensors have another shape) or another architecture
(other ``model.*`` keys) is a ``CheckpointError`` before any image is read, because the skipped
tensors would silently keep their random initial values. EMA weights are used when the file has
them (``load_weights`` prefers ``ema.module``); a quantized checkpoint (``quantized_file``) is
recognised and rebuilt quantized. ``model.engine.model_to_run`` picks ``<action>.trt_engine`` (a
deployed .onnx or TensorRT engine, ``model.deploy.deployed_model``) over the checkpoint when set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import nn

from model.checkpoints.weights import LoadReport, load_weights
from model.config.defaults import spec_section
from model.errors import CheckpointError, ConfigError

__all__ = ["check_no_deployed_model", "checkpoint_num_classes", "load_trained_model"]

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
    num_classes = int(spec_section(spec, "dataset")["num_classes"])
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
    from model.network.rtdetr import build_model

    check_no_deployed_model(spec, action)
    path = (spec.get(action) or {}).get("checkpoint")
    if not path or str(path).strip() in ("", "???"):
        raise CheckpointError(f"{action}.checkpoint is not set; give the trained checkpoint (.pth) to use")
    from model.checkpoints.quantized_file import load_if_quantized

    quantized = load_if_quantized(spec, action, str(path))
    if quantized is not None:
        return quantized
    model = build_model(spec)
    report = load_weights(model, str(path))
    _check_fit(report, spec, action)
    return model.eval(), report
