"""The checked plan of a TensorRT build: ``gen_trt_engine.*`` and the ONNX model, read without TensorRT.

``plan_engine(spec, results_dir)`` checks everything a build needs before TensorRT is imported, so
a bad spec fails the same way on a machine without a GPU:

- ``onnx_file`` exists and is an ONNX model with one image input ``(batch, 3, H, W)``; H and W are
  fixed (they are the engine's input size; TAO reads them from the ONNX file too).
- ``tensorrt.data_type`` is FP32, FP16 or INT8 (any case, as TAO lower-cases it).
- The batch profile: ``batch_size`` -1 means a dynamic profile ``min_batch_size <= opt_batch_size <=
  max_batch_size``; ``batch_size`` >= 1 builds a fixed batch (min = opt = max = batch_size). An ONNX
  model exported with a fixed batch fixes it (``batch_size`` must then be -1 or that batch).
- ``tensorrt.layers_precision``: ``"layer_name:precision"`` (precision fp32, fp16 or int8; the
  name may be an ``fnmatch`` pattern such as ``/decoder/*``), never lower than ``data_type``
  allows; ``match_layers`` matches them against the parsed network at build time, and a name that
  matches no layer is an error with close names.
- INT8: calibration images or an existing cache (``trt_calibration.plan_calibration``). An ONNX
  model with Q/DQ nodes (from ``rtdetr quantize``) carries its own scales: it is built strongly
  typed (TensorRT 10) and needs no calibration.

Output paths (their folders are created and checked writable): ``trt_engine`` (default when empty:
the ONNX file's folder and stem with ``.engine``; TAO's default is a temporary file, which nothing
could use afterwards), the calibration cache ``tensorrt.calibration.cal_cache_file`` (default
``<results_dir>/calibration.cache``) and ``timing_cache`` when set. ``workspace_size`` is in MiB
(0 leaves TensorRT's default, the device's memory).
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.config.defaults import spec_section, with_defaults
from model.deploy.trt_calibration import CalibrationPlan, plan_calibration
from model.errors import ConfigError, SpecError

__all__ = [
    "DATA_TYPES",
    "BatchProfile",
    "EnginePlan",
    "OnnxInput",
    "batch_profile",
    "match_layers",
    "parse_layers_precision",
    "plan_engine",
    "read_onnx_input",
]

KEY = "gen_trt_engine"
DATA_TYPES = ("fp32", "fp16", "int8")
_RANK = {"fp32": 0, "fp16": 1, "int8": 2}


@dataclass(frozen=True)
class OnnxInput:
    """The image input of an ONNX model: its name and shape (batch -1 when dynamic)."""

    name: str
    batch: int
    channels: int
    height: int
    width: int
    quantized: bool = False


@dataclass(frozen=True)
class BatchProfile:
    """The optimization profile's batch sizes."""

    min: int
    opt: int
    max: int

    @property
    def dynamic(self) -> bool:
        return self.min != self.max

    def shapes(self, image: OnnxInput) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        rest = (image.channels, image.height, image.width)
        return (self.min, *rest), (self.opt, *rest), (self.max, *rest)


@dataclass(frozen=True)
class EnginePlan:
    """Everything the build needs, checked."""

    onnx_file: Path
    engine_file: Path
    image: OnnxInput
    data_type: str
    workspace_bytes: int
    profile: BatchProfile
    layers_precision: tuple[tuple[str, str], ...] = ()
    timing_cache: Path | None = None
    calibration: CalibrationPlan | None = None
    preserve_aspect_ratio: bool = False
    verbose: bool = False
    gpu_id: int = 0


def _dim(dim: Any) -> int:
    return int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else -1


def read_onnx_input(path: str | Path) -> OnnxInput:
    """The one image input of an ONNX model, read with the ``onnx`` package (weights not loaded).

    Raises:
        SpecError: the file is missing or not an ONNX model.
        ConfigError: the model has no single (N, C, H, W) input with fixed H and W.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{KEY}.onnx_file: {str(path)!r} does not exist; export one with `rtdetr export`")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends
        raise SpecError(
            f"{KEY}.onnx_file: {str(path)!r} is not an ONNX model ({type(error).__name__}); give the .onnx "
            "file that `rtdetr export` wrote"
        ) from None
    weights = {init.name for init in proto.graph.initializer}
    inputs = [value for value in proto.graph.input if value.name not in weights]
    if len(inputs) != 1:
        names = ", ".join(value.name for value in inputs) or "none"
        raise ConfigError(
            f"{KEY}.onnx_file: {str(path)!r} has {len(inputs)} inputs ({names}); RT-DETR has one image input"
        )
    value = inputs[0]
    dims = [_dim(d) for d in value.type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] < 1 or dims[2] < 1 or dims[3] < 1:
        shape = ["?" if d < 0 else d for d in dims]
        raise ConfigError(
            f"{KEY}.onnx_file: input {value.name!r} of {str(path)!r} has shape {shape}; the engine needs "
            "(batch, channels, height, width) with fixed channels, height and width: export with "
            "export.input_width/input_height set"
        )
    quantized = any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in proto.graph.node)
    return OnnxInput(value.name, dims[0], dims[1], dims[2], dims[3], quantized)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def batch_profile(section: Mapping[str, Any], onnx_batch: int) -> BatchProfile:
    """The min/opt/max batch of the engine (see the module doc).

    Raises:
        SpecError: inconsistent batch settings, naming each key.
    """
    section = with_defaults(section, KEY)
    trt_section = section["tensorrt"]
    batch = _int(section["batch_size"])
    if batch is None or batch == 0 or batch < -1:
        raise SpecError(
            f"{KEY}.batch_size: {section.get('batch_size')!r} must be -1 (dynamic batch) or a batch size >= 1"
        )
    if onnx_batch > 0:
        if batch not in (-1, onnx_batch):
            raise SpecError(
                f"{KEY}.batch_size: {batch} but the ONNX model's input has the fixed batch {onnx_batch}; set "
                f"batch_size to -1 or {onnx_batch}, or export again with export.batch_size=-1"
            )
        return BatchProfile(onnx_batch, onnx_batch, onnx_batch)
    if batch >= 1:
        return BatchProfile(batch, batch, batch)
    sizes = {name: trt_section[f"{name}_batch_size"] for name in ("min", "opt", "max")}
    problems = [
        f"{KEY}.tensorrt.{name}_batch_size: {value!r} must be an integer >= 1"
        for name, value in sizes.items()
        if _int(value) is None or value < 1
    ]
    if problems:
        raise SpecError(problems)
    if not sizes["min"] <= sizes["opt"] <= sizes["max"]:
        raise SpecError(
            f"{KEY}.tensorrt: min_batch_size {sizes['min']}, opt_batch_size {sizes['opt']}, max_batch_size "
            f"{sizes['max']} must satisfy min <= opt <= max (batch_size -1 builds this dynamic profile)"
        )
    return BatchProfile(sizes["min"], sizes["opt"], sizes["max"])


def parse_layers_precision(entries: Sequence[Any] | None, data_type: str) -> tuple[tuple[str, str], ...]:
    """``["name:fp16", ...]`` -> ``(("name", "fp16"), ...)``; a precision below ``data_type`` is an error."""
    rules: list[tuple[str, str]] = []
    problems: list[str] = []
    for index, entry in enumerate(entries or []):
        key = f"{KEY}.tensorrt.layers_precision[{index}]"
        name, sep, precision = str(entry).rpartition(":")
        precision = precision.strip().lower()
        if not sep or not name.strip() or precision not in DATA_TYPES:
            problems.append(
                f"{key}: {entry!r} must be 'layer_name:precision' with precision one of {', '.join(DATA_TYPES)}"
            )
        elif _RANK[precision] > _RANK[data_type]:
            problems.append(
                f"{key}: {entry!r} asks for {precision} in a {data_type.upper()} build; set "
                f"{KEY}.tensorrt.data_type={precision.upper()} or lower the layer's precision"
            )
        else:
            rules.append((name.strip(), precision))
    if problems:
        raise SpecError(problems)
    return tuple(rules)


def match_layers(layer_names: Sequence[str], rules: Sequence[tuple[str, str]]) -> dict[int, str]:
    """``{layer index: precision}`` for every layer a rule names (exactly or as a pattern); later
    rules win. A rule that matches no layer is an error that suggests close names."""
    chosen: dict[int, str] = {}
    for pattern, precision in rules:
        hits = [
            i for i, name in enumerate(layer_names) if name == pattern or fnmatch.fnmatchcase(name, pattern)
        ]
        if not hits:
            close = difflib.get_close_matches(pattern, list(layer_names), n=3, cutoff=0.5)
            hint = (
                f"; did you mean {', '.join(repr(c) for c in close)}?"
                if close
                else (f"; the network's layers are named like {', '.join(repr(n) for n in layer_names[:3])}")
            )
            raise ConfigError(
                f"{KEY}.tensorrt.layers_precision: no layer of the network is named {pattern!r}{hint}"
            )
        for index in hits:
            chosen[index] = precision
    return chosen


def _output_path(value: Any, default: Path, key: str, cwd: Path) -> Path:
    text = str(value or "").strip()
    path = default if not text or text == "???" else Path(text)
    path = path if path.is_absolute() else cwd / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SpecError(
            f"{key}: cannot create the folder of {str(path)!r} ({error.strerror or error}); choose a writable path"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise SpecError(f"{key}: the folder of {str(path)!r} is not writable; choose a writable path")
    return path


def plan_engine(spec: Mapping[str, Any], results_dir: Path, *, cwd: Path | None = None) -> EnginePlan:
    """Check ``gen_trt_engine.*`` and the ONNX model; no TensorRT needed (see the module doc)."""
    cwd = cwd or Path.cwd()
    section = spec_section(spec, KEY)
    trt_section = section["tensorrt"]
    onnx_text = str(section["onnx_file"] or "").strip()
    if not onnx_text or onnx_text == "???":
        raise SpecError(f"{KEY}.onnx_file: not set; give the ONNX model written by `rtdetr export`")
    onnx_file = Path(onnx_text) if Path(onnx_text).is_absolute() else cwd / onnx_text
    image = read_onnx_input(onnx_file)
    data_type = str(trt_section["data_type"]).strip().lower()
    if data_type not in DATA_TYPES:
        raise SpecError(
            f"{KEY}.tensorrt.data_type: {trt_section.get('data_type')!r} must be one of FP32, FP16, INT8"
        )
    profile = batch_profile(section, image.batch)
    workspace = _int(trt_section["workspace_size"])
    if workspace is None or workspace < 0:
        raise SpecError(
            f"{KEY}.tensorrt.workspace_size: {trt_section.get('workspace_size')!r} must be MiB >= 0 (0 = TensorRT's default)"
        )
    rules = parse_layers_precision(trt_section["layers_precision"], data_type)
    engine_file = _output_path(
        section["trt_engine"], onnx_file.with_suffix(".engine"), f"{KEY}.trt_engine", cwd
    )
    timing = str(section["timing_cache"] or "").strip()
    timing_cache = _output_path(timing, Path(timing), f"{KEY}.timing_cache", cwd) if timing else None
    calibration = None
    if data_type == "int8" and not image.quantized:
        cal_section = dict(trt_section["calibration"] or {})
        cache = _output_path(
            cal_section.get("cal_cache_file"),
            Path(results_dir) / "calibration.cache",
            f"{KEY}.tensorrt.calibration.cal_cache_file",
            cwd,
        )
        calibration = plan_calibration(cal_section, cache, cwd=cwd)
        if image.batch > 0 and calibration.batch_size != image.batch and not calibration.reuses_cache:
            raise SpecError(
                f"{KEY}.tensorrt.calibration.cal_batch_size: {calibration.batch_size} but the ONNX model's "
                f"input has the fixed batch {image.batch}; set cal_batch_size={image.batch}"
            )
    gpu_id = _int(section["gpu_id"])
    if gpu_id is None or gpu_id < 0:
        raise SpecError(f"{KEY}.gpu_id: {section.get('gpu_id')!r} must be a GPU index >= 0")
    augmentation = spec_section(spec, "dataset.augmentation")
    return EnginePlan(
        onnx_file=onnx_file,
        engine_file=engine_file,
        image=image,
        data_type=data_type,
        workspace_bytes=workspace << 20,
        profile=profile,
        layers_precision=rules,
        timing_cache=timing_cache,
        calibration=calibration,
        preserve_aspect_ratio=bool(augmentation["preserve_aspect_ratio"]),
        verbose=bool(section["verbose"]),
        gpu_id=gpu_id,
    )
