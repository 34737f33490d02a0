"""``rtdetr export -e spec.yaml [key=value ...]``: ONNX model of ``export.checkpoint``.

The network is rebuilt for ``export.input_height`` x ``export.input_width`` (default 640x640; any
multiples of 32, non-square ones such as 960x544 included: anchors and position embeddings are
computed for that size, never read from the checkpoint), the checkpoint is loaded (EMA weights
when present, the same fit checks as ``rtdetr evaluate``), RepVGG blocks are fused and the model is
traced to ONNX at ``export.opset_version`` (default 17). ``export.batch_size`` -1 = dynamic batch.
Input ``images`` [N,3,H,W] (RGB scaled to 0..1, as the data pipeline feeds the PyTorch model);
outputs ``pred_logits`` [N,Q,C] and ``pred_boxes`` [N,Q,4] (normalised cx,cy,w,h), which
``rtdetr evaluate``/``inference`` post-process exactly as the PyTorch model's outputs.

The file is checked with ``onnx.checker`` and run by ONNX Runtime on random images; the largest
difference from PyTorch (unfused model) is printed, written to ``export_report.json`` and put in the
SUCCESS status line.

``export.onnx_file`` empty (or ``???``): ``<export results dir>/<model_name or 'model'>.onnx``, the
export results dir being ``export.results_dir`` or ``<results_dir>/export``. TAO's RT-DETR export
requires ``onnx_file`` (``???`` in its template); TAO's other exporters that default it write
``<checkpoint without extension>.onnx`` beside the checkpoint, which may be a read-only input
folder, so this default keeps the file with the job's results. A relative path starts at the
current folder. ``export.on_cpu`` exports on the CPU; otherwise on ``cuda:<export.gpu_id>`` when a
GPU is visible (the graph is the same; the CPU is used without one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from model.config.defaults import spec_section
from model.engine.action_session import action_results_dir, action_session
from model.errors import ConfigError

__all__ = ["default_onnx_file", "run"]

_BLANK = ("", "???", None)


def default_onnx_file(spec: Mapping[str, Any]) -> Path:
    """``export.onnx_file`` when set, else ``<export results dir>/<model_name or 'model'>.onnx``."""
    given = spec_section(spec, "export")["onnx_file"]
    if given not in _BLANK and str(given).strip():
        return Path(str(given)).absolute()
    name = str(spec.get("model_name") or "").strip() or "model"
    return (action_results_dir(spec, "export") / f"{name}.onnx").absolute()


def _check_section(section: Mapping[str, Any]) -> None:
    from model.deploy.onnx_export import check_export_size, check_opset

    check_export_size(int(section["input_height"]), int(section["input_width"]))
    check_opset(int(section["opset_version"]))
    channels = int(section["input_channel"])
    if channels != 3:
        raise ConfigError(f"export.input_channel: {channels}; RT-DETR takes RGB images, set it to 3")
    fmt = str(section["format"])
    if fmt != "onnx":
        raise ConfigError(f"export.format: {fmt!r} is not supported; set export.format=onnx")
    batch = int(section["batch_size"])
    if batch == 0 or batch < -1:
        raise ConfigError(f"export.batch_size: {batch}; use -1 (dynamic batch) or a positive batch size")
    if section["serialize_nvdsinfer"]:
        raise ConfigError(
            "export.serialize_nvdsinfer: writing DeepStream configs is not supported; set it to false"
        )
    if section["checkpoint"] in _BLANK:
        raise ConfigError("export.checkpoint is not set; give the trained checkpoint (.pth) to export")


def _device(section: Mapping[str, Any]) -> torch.device:
    if section["on_cpu"] or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(f"cuda:{int(section['gpu_id'])}")


def run(spec: dict[str, Any], argv: Sequence[str]) -> int:
    """Export ``export.checkpoint`` to ONNX (one process; export has no multi-GPU mode)."""
    del argv
    from model.checkpoints.trained_model import load_trained_model
    from model.deploy.onnx_export import (
        compare_with_onnxruntime,
        export_onnx,
        reference_outputs,
        spec_for_size,
    )
    from model.engine.status import SUCCESS

    section = spec_section(spec, "export")
    with action_session(spec, "export", "Starting RT-DETR export.") as (results_dir, _world, status):
        _check_section(section)
        height, width = int(section["input_height"]), int(section["input_width"])
        batch = int(section["batch_size"])
        onnx_file = default_onnx_file(spec)
        device = _device(section)
        model, report = load_trained_model(spec_for_size(spec, height, width), "export")
        print(report.summary(), flush=True)
        model.to(device)
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(2 if batch < 0 else batch, 3, height, width, generator=generator)
        reference = reference_outputs(model, images)
        export_onnx(
            model,
            onnx_file,
            height=height,
            width=width,
            batch_size=batch,
            opset_version=int(section["opset_version"]),
            device=device,
            verbose=bool(section["verbose"]),
        )
        diffs = compare_with_onnxruntime(reference, onnx_file, images)
        summary = {
            "onnx_file": str(onnx_file),
            "checkpoint": str(section["checkpoint"]),
            "weights": report.source,
            "input": {"name": "images", "shape": [batch if batch > 0 else "batch", 3, height, width]},
            "outputs": {
                "pred_logits": list(reference[0].shape[1:]),
                "pred_boxes": list(reference[1].shape[1:]),
            },
            "opset_version": int(section["opset_version"]),
            "dynamic_batch": batch < 0,
            "repvgg_fused": True,
            "onnxruntime_max_abs_diff": diffs,
        }
        (results_dir / "export_report.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        print(
            f"Exported {onnx_file} ({height}x{width}, batch {'dynamic' if batch < 0 else batch}, "
            f"opset {summary['opset_version']}); ONNX Runtime vs PyTorch max abs difference "
            f"{diffs['max']:.3g} (pred_logits {diffs['pred_logits']:.3g}, pred_boxes {diffs['pred_boxes']:.3g})",
            flush=True,
        )
        status.write(
            SUCCESS,
            f"Export finished successfully: {onnx_file} (ONNX Runtime vs PyTorch max abs difference "
            f"{diffs['max']:.3g}).",
            kpi={"onnx_max_abs_diff": diffs["max"]},
            onnx_file=str(onnx_file),
        )
    return 0
