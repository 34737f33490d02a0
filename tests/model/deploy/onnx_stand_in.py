"""Small ONNX files, images and ``gen_trt_engine`` specs for the TensorRT tests (no TensorRT needed).

``Heads`` stands in for RT-DETR's exported graph (one image input, ``pred_logits`` and
``pred_boxes``), so the engine plan, the calibration and the CLI run on real ONNX files in seconds.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.deploy.trt_builder import tensorrt_missing

MISSING = tensorrt_missing()
"""Why no engine can be built here (None where TensorRT and a CUDA GPU are present)."""


class Heads(torch.nn.Module):
    """Stands in for RT-DETR's exported graph: one image input, pred_logits and pred_boxes."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = images.mean(dim=(2, 3))
        logits = pooled[:, None, :2].repeat(1, 5, 1)
        boxes = torch.sigmoid(pooled[:, None, :1].repeat(1, 5, 4))
        return logits, boxes


def write_onnx(path: Path, *, batch: int = -1, size: tuple[int, int] = (64, 96)) -> Path:
    dynamic = {"images": {0: "batch"}, "pred_logits": {0: "batch"}, "pred_boxes": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as rtdetr export uses
        torch.onnx.export(
            Heads(),
            (torch.rand(max(1, batch), 3, *size),),
            str(path),
            dynamo=False,
            input_names=["images"],
            output_names=["pred_logits", "pred_boxes"],
            dynamic_axes=dynamic if batch < 0 else None,
            opset_version=17,
        )
    return path


def write_images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, size=(40 + i, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:02d}.png")
    return folder


def gen_trt_engine_spec(onnx: Path, results: Path, **trt: object) -> dict:
    calibration = trt.pop("calibration", {})
    section = {"onnx_file": str(onnx), "trt_engine": "", "batch_size": trt.pop("batch_size", -1)}
    section["tensorrt"] = {"data_type": "FP32", "calibration": calibration, **trt}
    return {"results_dir": str(results), "gen_trt_engine": section}
