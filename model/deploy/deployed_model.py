"""A deployed RT-DETR (``<action>.trt_engine``) as a module that answers like the PyTorch model.

``<action>.trt_engine`` names either an ONNX file written by ``rtdetr export`` (run by ONNX Runtime,
on the CPU, or on the GPU when onnxruntime-gpu is installed) or a TensorRT engine (``.engine``,
``.trt``, ``.plan``; run by ``model.deploy.trt_engine_runner.TrtEngineRunner``, which needs
TensorRT and a GPU). ``DeployedModel(images)`` returns ``{"pred_logits", "pred_boxes"}`` torch
tensors on the images' device, so ``rtdetr evaluate`` / ``inference`` reuse the PyTorch path's
data pipeline, post-processor and COCO evaluation unchanged.

A file exported with a fixed batch takes any number of images: they go through in chunks of that
batch, the last one padded with blank images whose outputs are dropped. The input size is the
file's (its anchors are built for it); a file with dynamic height/width (not written by
``rtdetr export``) runs at ``<action>.input_height/input_width``, else ``eval_spatial_size``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from model.config.defaults import default_of, spec_section
from model.errors import ConfigError

__all__ = [
    "ENGINE_SUFFIXES",
    "DeployedModel",
    "OnnxRuntimeRunner",
    "deployed_model_path",
    "load_deployed_model",
]

ENGINE_SUFFIXES = (".engine", ".trt", ".plan")
_OUTPUTS = ("pred_logits", "pred_boxes")


def deployed_model_path(spec: Mapping[str, Any], action: str) -> Path | None:
    """``<action>.trt_engine`` as a path, or None when it is not set."""
    value = (spec.get(action) or {}).get("trt_engine")
    if value is None or str(value).strip() in ("", "???"):
        return None
    return Path(str(value))


def _dim(value: Any) -> int:
    return int(value) if isinstance(value, (int, np.integer)) and int(value) > 0 else -1


def _onnxruntime_errors(ort: Any) -> tuple[type[BaseException], ...]:
    """ONNX Runtime's load errors (pybind classes that do not derive from RuntimeError)."""
    state = ort.capi.onnxruntime_pybind11_state
    names = (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "InvalidProtobuf",
        "InvalidGraph",
        "RuntimeException",
    )
    return tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))


class OnnxRuntimeRunner:
    """An ``rtdetr export`` ONNX file in ONNX Runtime: ``runner(images)`` -> dict of torch tensors."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        from model.deploy.onnx_export import INPUT_NAME, onnxruntime_session

        self.path = Path(path)
        try:
            self.session = onnxruntime_session(self.path, threads=threads, device=device)
        except (*_onnxruntime_errors(ort), RuntimeError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"{self.path}: ONNX Runtime cannot load this file ({first}); give an ONNX file written "
                "by `rtdetr export`"
            ) from None
        inputs = self.session.get_inputs()
        outputs = {o.name: o for o in self.session.get_outputs()}
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or not set(_OUTPUTS) <= set(outputs):
            raise ConfigError(
                f"{self.path}: expected one input 'images' and outputs 'pred_logits', 'pred_boxes' (an "
                f"`rtdetr export` file); found inputs {[i.name for i in inputs]}, outputs {list(outputs)}"
            )
        self.input_name = inputs[0].name
        self.input_shape = tuple(_dim(v) for v in inputs[0].shape)
        logits_shape = outputs["pred_logits"].shape
        self.num_classes = _dim(logits_shape[-1]) if len(logits_shape) == 3 else -1
        self.providers = self.session.get_providers()

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        feed = {self.input_name: images.detach().float().cpu().numpy()}
        logits, boxes = self.session.run(list(_OUTPUTS), feed)
        return {"pred_logits": torch.from_numpy(logits), "pred_boxes": torch.from_numpy(boxes)}


class DeployedModel(nn.Module):
    """``forward(images)`` -> ``{"pred_logits", "pred_boxes"}`` from a runner, batch handled."""

    def __init__(self, runner: Callable[[Tensor], Mapping[str, Tensor]], path: Path, kind: str):
        super().__init__()
        self.runner = runner
        self.path = Path(path)
        self.kind = kind
        shape = tuple(getattr(runner, "input_shape", (-1, 3, -1, -1)))
        self.fixed_batch = shape[0] if shape[0] > 0 else None
        self.input_size = (shape[2], shape[3]) if len(shape) == 4 else (-1, -1)

    def _run(self, images: Tensor) -> dict[str, Tensor]:
        out = self.runner(images)
        return {k: out[k].to(images.device).float() for k in _OUTPUTS}

    @torch.no_grad()
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        if self.fixed_batch is None or images.shape[0] == self.fixed_batch:
            return self._run(images)
        parts = []
        for start in range(0, images.shape[0], self.fixed_batch):
            chunk = images[start : start + self.fixed_batch]
            count = chunk.shape[0]
            if count < self.fixed_batch:
                blank = chunk.new_zeros((self.fixed_batch - count, *chunk.shape[1:]))
                chunk = torch.cat([chunk, blank])
            out = self._run(chunk)
            parts.append({k: v[:count] for k, v in out.items()})
        return {k: torch.cat([p[k] for p in parts]) for k in _OUTPUTS}


def _engine_runner(path: Path, action: str) -> Any:
    hint = (
        f"Set {action}.trt_engine to the .onnx file written by `rtdetr export` instead (run by ONNX Runtime, "
        "no TensorRT needed)."
    )
    if not torch.cuda.is_available():
        raise ConfigError(
            f"{action}.trt_engine: {path} is a TensorRT engine, which needs a GPU; none is visible. {hint}"
        )
    try:
        from model.deploy.trt_engine_runner import TrtEngineRunner
    except ImportError as exc:
        raise ConfigError(
            f"{action}.trt_engine: {path} is a TensorRT engine, but TensorRT cannot be used here ({exc}). {hint}"
        ) from None
    return TrtEngineRunner(path, device="cuda")


def _check_file(path: Path, action: str) -> str:
    if not path.is_file():
        raise ConfigError(
            f"{action}.trt_engine: {str(path)!r} does not exist; give the .onnx file from `rtdetr export` "
            f"or a TensorRT .engine from `rtdetr gen_trt_engine`"
        )
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    raise ConfigError(
        f"{action}.trt_engine: {str(path)!r} is neither an ONNX file (.onnx) nor a TensorRT engine "
        f"({', '.join(ENGINE_SUFFIXES)}); give the file from `rtdetr export` or `rtdetr gen_trt_engine`"
    )


def _input_size(model: DeployedModel, spec: Mapping[str, Any], action: str) -> tuple[int, int]:
    section = spec.get(action) or {}
    asked = (section.get("input_height"), section.get("input_width"))
    engine_h, engine_w = model.input_size
    if engine_h > 0 and engine_w > 0:
        given = (int(asked[0]), int(asked[1])) if all(v not in (None, "") for v in asked) else None
        # the defaults of <action>.input_height/input_width (TAO's) are not a choice worth a warning
        default = (default_of(f"{action}.input_height"), default_of(f"{action}.input_width"))
        if given is not None and given != default and given != (engine_h, engine_w):
            print(
                f"warning: {action}.input_height/input_width {int(asked[0])}x{int(asked[1])} differ from the "
                f"size {engine_h}x{engine_w} that {model.path.name} was exported for; its size is used",
                file=sys.stderr,
                flush=True,
            )
        return engine_h, engine_w
    if all(v not in (None, "") for v in asked):
        return int(asked[0]), int(asked[1])
    eval_size = spec_section(spec, "dataset.augmentation")["eval_spatial_size"]
    return int(eval_size[0]), int(eval_size[1])


def load_deployed_model(
    spec: Mapping[str, Any], action: str, device: torch.device | str = "cpu"
) -> tuple[DeployedModel, tuple[int, int]]:
    """The runner for ``<action>.trt_engine`` and the (height, width) its images must have.

    Raises:
        ConfigError: missing file, unknown suffix, an unreadable ONNX file, a class count other than
            ``dataset.num_classes``, or an engine without TensorRT/GPU.
    """
    path = deployed_model_path(spec, action)
    if path is None:
        raise ConfigError(f"{action}.trt_engine is not set")
    kind = _check_file(path, action)
    if kind == "onnx":
        try:
            runner: Any = OnnxRuntimeRunner(path, device=str(device))
        except ConfigError as exc:
            raise ConfigError(f"{action}.trt_engine: {exc}") from None
    else:
        runner = _engine_runner(path, action)
    model = DeployedModel(runner, path, kind)
    num_classes = int(spec_section(spec, "dataset")["num_classes"])
    file_classes = int(getattr(runner, "num_classes", -1) or -1)
    if file_classes > 0 and file_classes != num_classes:
        raise ConfigError(
            f"{action}.trt_engine: {path} predicts {file_classes} classes but dataset.num_classes is "
            f"{num_classes}; set dataset.num_classes={file_classes} (the value used for export)"
        )
    return model, _input_size(model, spec, action)
