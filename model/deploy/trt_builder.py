"""Build and serialize a TensorRT engine from a checked ``EnginePlan`` (TensorRT 10; 8.6 works).

``tensorrt_missing()`` says what is missing (the ``tensorrt`` package or a CUDA GPU) without a
traceback, and ``load_tensorrt()`` turns that into a ConfigError. ``build_engine(plan)`` parses the
ONNX model (explicit batch; strongly typed for a Q/DQ model), configures the builder (workspace
memory pool, FP16/INT8 flags, the min/opt/max batch profile, the INT8 entropy calibrator and its
calibration profile, ``layers_precision`` with obeyed precision constraints, the timing cache) on
``cuda:<gpu_id>``, and writes the engine and the timing cache atomically. INT8 builds use FP16 too
where it is faster, as TAO's builder does; FP32 builds turn TensorRT's default TF32 off, so an FP32
engine computes what the ONNX model computes.
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.deploy.trt_calibration import CalibrationBatches, entropy_calibrator
from model.deploy.trt_engine_plan import KEY, EnginePlan, match_layers
from model.errors import ConfigError, ModelError, SpecError

__all__ = [
    "NO_GPU",
    "NO_TENSORRT",
    "BuildReport",
    "build_engine",
    "configure",
    "load_tensorrt",
    "tensorrt_missing",
]

NO_TENSORRT = (
    "TensorRT is not installed (pip install tensorrt needs an NVIDIA GPU machine); the ONNX model can be "
    "evaluated with ONNX Runtime: rtdetr evaluate evaluate.trt_engine=<onnx>"
)
NO_GPU = (
    "no CUDA GPU is visible (torch.cuda.is_available() is False) and TensorRT builds engines on the GPU "
    "that will run them; the ONNX model can be evaluated with ONNX Runtime: rtdetr evaluate "
    "evaluate.trt_engine=<onnx>"
)


@dataclass
class BuildReport:
    engine_file: Path
    seconds: float
    size_bytes: int
    tensorrt_version: str
    calibration_batches: int = 0
    layers_set: dict[str, str] = field(default_factory=dict)


def tensorrt_missing() -> str | None:
    """Why no engine can be built here (no ``tensorrt`` package, no CUDA GPU), or None."""
    try:
        importlib.import_module("tensorrt")
    except (ImportError, OSError):
        return NO_TENSORRT
    import torch

    if not torch.cuda.is_available():
        return NO_GPU
    return None


def load_tensorrt() -> Any:
    """The ``tensorrt`` module; ConfigError (no traceback) when it or a CUDA GPU is missing."""
    missing = tensorrt_missing()
    if missing:
        raise ConfigError(missing)
    return importlib.import_module("tensorrt")


def _major(trt: Any) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        return 10


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _network(trt: Any, builder: Any, plan: EnginePlan, logger: Any) -> tuple[Any, Any]:
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if _major(trt) < 10:
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    if plan.image.quantized and hasattr(creation, "STRONGLY_TYPED"):
        flags |= 1 << int(creation.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.onnx_file)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "no detail"
        raise ModelError(f"{KEY}.onnx_file: TensorRT cannot parse {str(plan.onnx_file)!r}: {errors}")
    return network, parser


def _set_layer_precisions(trt: Any, network: Any, config: Any, plan: EnginePlan) -> dict[str, str]:
    if not plan.layers_precision:
        return {}
    names = [network.get_layer(i).name for i in range(network.num_layers)]
    dtypes = {"fp32": trt.float32, "fp16": trt.float16, "int8": trt.int8}
    floating = (trt.float32, trt.float16)
    done: dict[str, str] = {}
    for index, precision in match_layers(names, plan.layers_precision).items():
        layer = network.get_layer(index)
        outputs = [layer.get_output(o) for o in range(layer.num_outputs)]
        if not outputs or any(out.dtype not in floating for out in outputs):
            continue  # shape arithmetic and index layers keep their integer types
        layer.precision = dtypes[precision]
        for o in range(layer.num_outputs):
            layer.set_output_type(o, dtypes[precision])
        done[layer.name] = precision
    if done:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return done


def _calibrator(trt: Any, builder: Any, config: Any, plan: EnginePlan, device: Any) -> Any:
    calibration = plan.calibration
    if calibration is None:  # plan_engine always plans calibration for a non-Q/DQ INT8 build
        raise ModelError(f"{KEY}: INT8 without a calibration plan; this is a bug, please report it")
    batches = None
    if not calibration.reuses_cache:
        size = (plan.image.height, plan.image.width)
        batches = CalibrationBatches(
            calibration.files, calibration.batch_size, size, plan.preserve_aspect_ratio
        )
    calibrator = entropy_calibrator(trt, calibration, batches, device)
    config.int8_calibrator = calibrator
    if plan.image.batch < 1:
        shape = (calibration.batch_size, plan.image.channels, plan.image.height, plan.image.width)
        profile = builder.create_optimization_profile()
        profile.set_shape(plan.image.name, shape, shape, shape)
        config.set_calibration_profile(profile)
    return calibrator


def configure(
    trt: Any, builder: Any, network: Any, plan: EnginePlan, device: Any
) -> tuple[Any, Any, dict[str, str]]:
    """The builder config of ``plan``: workspace, precision flags, profile, calibrator, layer precisions."""
    config = builder.create_builder_config()
    if plan.workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    calibrator = None
    strongly_typed = plan.image.quantized and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    if plan.image.quantized and not strongly_typed:
        # TensorRT 8.6 has no strongly typed networks: Q/DQ nodes need the INT8 flag, no calibrator.
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.INT8)
    elif not plan.image.quantized:  # a strongly typed network takes its types from the Q/DQ nodes
        if plan.data_type == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)  # FP32 means FP32: no TF32 matrix products
        if plan.data_type in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if plan.data_type == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            calibrator = _calibrator(trt, builder, config, plan, device)
    profile = builder.create_optimization_profile()
    profile.set_shape(plan.image.name, *plan.profile.shapes(plan.image))
    config.add_optimization_profile(profile)
    if strongly_typed and plan.layers_precision:
        print(f"{KEY}.tensorrt.layers_precision is ignored: a Q/DQ model is built strongly typed", flush=True)
    layers = {} if strongly_typed else _set_layer_precisions(trt, network, config, plan)
    return config, calibrator, layers


def _timing_cache(config: Any, path: Path | None) -> Any:
    if path is None:
        return None
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None and data:
        print(
            f"{KEY}.timing_cache: {str(path)!r} is not a usable timing cache; starting a new one", flush=True
        )
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, False)
    return cache


def build_engine(plan: EnginePlan) -> BuildReport:
    """Build and serialize the engine of ``plan`` on ``cuda:<gpu_id>``; write the caches."""
    trt = load_tensorrt()
    import torch

    if plan.gpu_id >= torch.cuda.device_count():
        raise SpecError(
            f"{KEY}.gpu_id: {plan.gpu_id} but this machine has {torch.cuda.device_count()} GPU(s)"
        )
    torch.cuda.set_device(plan.gpu_id)
    device = torch.device("cuda", plan.gpu_id)
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.VERBOSE if plan.verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _network(trt, builder, plan, logger)
    config, calibrator, layers = configure(trt, builder, network, plan, device)
    _timing_cache(config, plan.timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(
            f"{KEY}: TensorRT could not build an engine from {str(plan.onnx_file)!r}; run again with "
            f"{KEY}.verbose=True to see TensorRT's log"
        )
    data = bytes(serialized)
    _atomic_write(plan.engine_file, data)
    if plan.timing_cache is not None:
        _atomic_write(plan.timing_cache, bytes(config.get_timing_cache().serialize()))
    return BuildReport(
        engine_file=plan.engine_file,
        seconds=time.perf_counter() - start,
        size_bytes=len(data),
        tensorrt_version=str(trt.__version__),
        calibration_batches=getattr(calibrator, "batches_used", 0),
        layers_set=layers,
    )
