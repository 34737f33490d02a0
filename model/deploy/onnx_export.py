"""RT-DETR -> ONNX: one input ``images`` [N,3,H,W] float32 (normalised as the data pipeline does),
two outputs ``pred_logits`` [N,Q,C] and ``pred_boxes`` [N,Q,4] (cx, cy, w, h in 0..1).

The network must be built for the export size: the decoder's anchors and the encoder's sine-cosine
position embedding are precomputed for ``eval_spatial_size``, and the traced graph keeps them as
constants. ``model_for_export`` therefore rebuilds the model with ``eval_spatial_size = [H, W]``
(anchors are never read from the checkpoint), so any size that is a multiple of 32 works,
non-square ones such as 960x544 included. RepVGG blocks are fused (``RTDETR.deploy``) before
tracing. Post-processing (sigmoid, top-k, box scaling) stays outside the graph, so the deployed
model's outputs go through the same ``RTDETRPostProcessor`` as the PyTorch path.

The TorchScript exporter is used (``dynamo=False``): it needs no ``onnxscript`` and writes the
requested opset (16..20; GridSample, used by the deformable attention, exists from opset 16).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from model.errors import ConfigError

__all__ = [
    "INPUT_NAME",
    "MIN_OPSET",
    "OUTPUT_NAMES",
    "ExportWrapper",
    "check_export_size",
    "compare_with_onnxruntime",
    "export_onnx",
    "onnxruntime_session",
    "reference_outputs",
    "spec_for_size",
]

INPUT_NAME = "images"
OUTPUT_NAMES = ("pred_logits", "pred_boxes")
MIN_OPSET = 16
MAX_OPSET = 20
STRIDE = 32


class ExportWrapper(nn.Module):
    """The network as a function of the image batch only: ``(pred_logits, pred_boxes)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        outputs = self.model(images)
        return outputs["pred_logits"], outputs["pred_boxes"]


def check_export_size(height: int, width: int, prefix: str = "export") -> None:
    """Both sides positive multiples of 32 (the backbone's largest stride), else a ConfigError."""
    for key, value in (("input_height", height), ("input_width", width)):
        if int(value) <= 0 or int(value) % STRIDE:
            low = max(STRIDE, int(value) // STRIDE * STRIDE)
            raise ConfigError(
                f"{prefix}.{key}: {value} is not a multiple of {STRIDE}; the feature maps at strides 8, 16 "
                f"and 32 need a size divisible by {STRIDE}. Use {low} or {low + STRIDE}."
            )


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ConfigError(
            f"export.opset_version: {opset} is not supported; the deformable attention needs GridSample "
            f"(opset >= {MIN_OPSET}) and the exporter writes up to opset {MAX_OPSET}. Use 17 (the default)."
        )


def spec_for_size(spec: Mapping[str, Any], height: int, width: int) -> dict[str, Any]:
    """A copy of ``spec`` whose ``eval_spatial_size`` is ``[height, width]`` (model and data follow it)."""
    import copy

    out = copy.deepcopy(dict(spec))
    dataset = out.setdefault("dataset", {})
    augmentation = dataset.setdefault("augmentation", {})
    augmentation["eval_spatial_size"] = [int(height), int(width)]
    return out


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    height: int,
    width: int,
    batch_size: int = -1,
    opset_version: int = 17,
    device: torch.device | str = "cpu",
    verbose: bool = False,
) -> Path:
    """Trace ``model`` (built for ``height`` x ``width``, weights loaded) into ``path`` and check the file.

    ``batch_size`` -1 makes the batch dimension dynamic; otherwise the file takes exactly that many
    images. RepVGG blocks are fused first. Raises ConfigError for a bad size or opset.
    """
    import onnx

    check_export_size(height, width)
    check_opset(opset_version)
    device = torch.device(device)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deployable = model.deploy() if hasattr(model, "deploy") else model.eval()
    wrapper = ExportWrapper(deployable).to(device).eval()
    example = torch.rand(max(1, int(batch_size)), 3, int(height), int(width), device=device)
    dynamic = None
    if int(batch_size) < 0:
        dynamic = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints taken from shapes
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=int(opset_version),
            dynamic_axes=dynamic,
            do_constant_folding=True,
            verbose=bool(verbose),
        )
    onnx.checker.check_model(str(path), full_check=True)
    return path


def onnxruntime_session(path: str | Path, threads: int | None = None, device: str = "cpu") -> Any:
    """An ONNX Runtime session for ``path`` (CUDA provider when asked for and installed)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


@torch.no_grad()
def reference_outputs(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """PyTorch's ``(pred_logits, pred_boxes)`` for ``images`` (eval mode, on the model's device)."""
    device = next(model.parameters()).device
    logits, boxes = ExportWrapper(model).eval()(images.to(device))
    return logits.float().cpu(), boxes.float().cpu()


def compare_with_onnxruntime(
    reference: tuple[Tensor, Tensor], path: str | Path, images: Tensor, device: str = "cpu"
) -> dict[str, float]:
    """Largest absolute difference between ``reference`` (``reference_outputs`` of the same
    images, taken before the RepVGG fusing) and ONNX Runtime running ``path`` on ``images``,
    per output: ``{"pred_logits": .., "pred_boxes": .., "max": ..}``."""
    session = onnxruntime_session(path, device=device)
    got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.detach().cpu().numpy().astype(np.float32)})
    diffs = {
        name: float(np.max(np.abs(ref.numpy() - out))) if out.size else 0.0
        for name, ref, out in zip(OUTPUT_NAMES, reference, got)
    }
    diffs["max"] = max(diffs.values())
    return diffs
