"""Run a TensorRT engine built by ``gen_trt_engine`` on torch tensors (TensorRT 10 name-based I/O; 8.6 works).

``TrtEngineRunner(path, device="cuda")`` loads the engine; ``runner(images)`` takes a float32
``(N, 3, H, W)`` tensor (pre-processed as for evaluation) and returns ``{"pred_logits": (N, Q, C),
"pred_boxes": (N, Q, 4)}`` float32 tensors on the runner's device. ``runner.input_shape`` is the
engine's input shape with -1 for a dynamic batch.

The engine's tensors are found by role, not by a fixed name: its one input is the images; the
outputs named ``pred_logits`` and ``pred_boxes`` are used, and an engine with two other outputs is
read by shape (the one ending in 4 is the boxes). For a dynamic-batch engine the input shape is
set per call; a batch larger than the profile's maximum runs in chunks, and one smaller than its
minimum is padded with zeros (the padding's outputs are dropped).

Missing ``tensorrt`` or CUDA, an unreadable engine, or images of another size are a ConfigError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from model.deploy.trt_builder import load_tensorrt
from model.errors import ConfigError

__all__ = ["TrtEngineRunner", "assign_outputs", "batch_chunks"]


def assign_outputs(shapes: Mapping[str, Sequence[int]]) -> dict[str, str]:
    """``{"pred_logits": name, "pred_boxes": name}`` for an engine's output tensors ``{name: shape}``.

    Raises:
        ConfigError: the outputs cannot be told apart.
    """
    if "pred_logits" in shapes and "pred_boxes" in shapes:
        return {"pred_logits": "pred_logits", "pred_boxes": "pred_boxes"}
    if len(shapes) == 2:
        boxes = [name for name, shape in shapes.items() if len(shape) == 3 and shape[-1] == 4]
        if len(boxes) == 1:
            logits = next(name for name in shapes if name != boxes[0])
            return {"pred_logits": logits, "pred_boxes": boxes[0]}
    described = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
    raise ConfigError(
        f"the TensorRT engine's outputs ({described}) are not RT-DETR's pred_logits (N, Q, C) and "
        "pred_boxes (N, Q, 4); build it from an ONNX file written by `rtdetr export`"
    )


def batch_chunks(count: int, low: int, high: int) -> list[tuple[int, int, int]]:
    """Split ``count`` images into runs the profile ``[low, high]`` accepts: ``(start, stop, run_size)``
    with ``run_size >= stop - start`` (the difference is zero padding)."""
    chunks = []
    for start in range(0, count, high):
        stop = min(count, start + high)
        chunks.append((start, stop, max(low, stop - start)))
    return chunks


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {"float32": torch.float32, "float16": torch.float16, "int32": torch.int32, "int8": torch.int8}
    table.update({"bool": torch.bool, "int64": torch.int64, "bfloat16": torch.bfloat16})
    for name, value in table.items():
        if hasattr(trt, name) and dtype == getattr(trt, name):
            return value
    raise ConfigError(f"the TensorRT engine uses the tensor type {dtype}, which this runner cannot hold")


class TrtEngineRunner:
    """A deserialized engine and one execution context on ``device`` (see the module doc)."""

    def __init__(self, path: str | Path, device: str = "cuda"):
        trt = load_tensorrt()
        self._trt = trt
        self.path = Path(path)
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ConfigError(f"a TensorRT engine runs on a CUDA device, not {device!r}")
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if not self.path.is_file():
            raise ConfigError(
                f"TensorRT engine {str(self.path)!r} does not exist; build it with `rtdetr gen_trt_engine`"
            )
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise ConfigError(
                    f"TensorRT {trt.__version__} cannot load {str(self.path)!r}: not an engine, or built by "
                    "another TensorRT version or for another GPU; build it again on this machine"
                )
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ConfigError(
                f"TensorRT engine {str(self.path)!r} has inputs {inputs}; RT-DETR has one image input"
            )
        self.input_name = inputs[0]
        outputs = {n: tuple(self.engine.get_tensor_shape(n)) for n in names if n != self.input_name}
        self.output_names = assign_outputs(outputs)
        logits_shape = outputs[self.output_names["pred_logits"]]
        self.num_classes = int(logits_shape[-1]) if len(logits_shape) == 3 and logits_shape[-1] > 0 else -1
        self.input_shape = tuple(int(d) for d in self.engine.get_tensor_shape(self.input_name))
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input_name))
        if self.input_shape[0] < 0:
            low, _opt, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
            self.batch_range = (int(low[0]), int(high[0]))
        else:
            self.batch_range = (self.input_shape[0], self.input_shape[0])

    def _check(self, images: torch.Tensor) -> None:
        expected = tuple(self.input_shape[1:])
        if images.dim() != 4 or tuple(images.shape[1:]) != expected or images.shape[0] == 0:
            raise ConfigError(
                f"the TensorRT engine {self.path.name} takes images of shape (N, {', '.join(map(str, expected))}), "
                f"got {tuple(images.shape)}; set evaluate/inference.input_height and input_width to the "
                "engine's size"
            )

    def _run(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        trt = self._trt
        context = self.context
        if self.input_shape[0] < 0:
            context.set_input_shape(self.input_name, tuple(batch.shape))
        context.set_tensor_address(self.input_name, int(batch.data_ptr()))
        results: dict[str, torch.Tensor] = {}
        for role, name in self.output_names.items():
            shape = tuple(int(d) for d in context.get_tensor_shape(name))
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            results[role] = torch.empty(shape, dtype=dtype, device=self.device)
            context.set_tensor_address(name, int(results[role].data_ptr()))
        stream = torch.cuda.current_stream(self.device)
        if not context.execute_async_v3(stream.cuda_stream):
            raise ConfigError(
                f"TensorRT could not run {self.path.name} on a batch of shape {tuple(batch.shape)}"
            )
        stream.synchronize()
        return results

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check(images)
        low, high = self.batch_range
        parts: list[dict[str, torch.Tensor]] = []
        with torch.cuda.device(self.device):
            images = images.to(device=self.device, dtype=self.input_dtype)
            for start, stop, size in batch_chunks(int(images.shape[0]), low, high):
                batch = images[start:stop]
                if size > stop - start:
                    pad = batch.new_zeros((size - (stop - start), *batch.shape[1:]))
                    batch = torch.cat([batch, pad])
                out = self._run(batch.contiguous())
                parts.append({k: v[: stop - start] for k, v in out.items()})
        return {role: torch.cat([p[role] for p in parts]).float() for role in ("pred_logits", "pred_boxes")}
