"""``rtdetr gen_trt_engine -e spec.yaml [key=value ...]``: a TensorRT engine from the exported ONNX model.

Every input is checked first, without TensorRT (``model.deploy.trt_builder.plan_engine``): the ONNX
file, ``tensorrt.data_type``, the batch profile, ``layers_precision``, the output paths and, for
INT8, the calibration images or cache. Then, where ``tensorrt`` and a CUDA GPU exist, the engine is
built on ``gen_trt_engine.gpu_id`` and written to ``gen_trt_engine.trt_engine`` (default: beside the
ONNX file, same stem, ``.engine``). Where either is missing nothing is built: the command prints what
is missing, writes a SKIPPED status line with that message, and exits 0, so a pipeline goes on and
evaluates the ONNX model with ONNX Runtime instead.

Output in ``gen_trt_engine.results_dir`` (default ``<results_dir>/gen_trt_engine``): ``status.json``
(STARTED, then SUCCESS with the engine's path, or SKIPPED, or FAILURE with the error) and
``experiment.yaml``; INT8 calibration writes ``tensorrt.calibration.cal_cache_file`` (default
``calibration.cache`` in that folder), reused by later builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from model.engine.action_session import action_session
from model.engine.status import SKIPPED, SUCCESS

__all__ = ["run"]


def _describe(plan: Any) -> str:
    profile = plan.profile
    batch = (
        f"batch {profile.min}"
        if not profile.dynamic
        else f"batch {profile.min}..{profile.max} (opt {profile.opt})"
    )
    image = plan.image
    return f"{plan.data_type.upper()}, {batch}, input {image.name!r} {image.channels}x{image.height}x{image.width}"


def run(spec: Mapping[str, Any], argv: Sequence[str] = ()) -> int:
    from model.deploy.trt_builder import build_engine, tensorrt_missing
    from model.deploy.trt_engine_plan import plan_engine

    with action_session(spec, "gen_trt_engine", "Generating a TensorRT engine") as (
        results_dir,
        _world,
        status,
    ):
        plan = plan_engine(spec, results_dir, cwd=Path.cwd())
        missing = tensorrt_missing()
        if missing:
            missing = missing.replace("<onnx>", str(plan.onnx_file))
            message = f"gen_trt_engine skipped, no engine was built: {missing}"
            status.write(SKIPPED, message, onnx_file=str(plan.onnx_file))
            print(message, flush=True)
            return 0
        print(f"Building a TensorRT engine from {plan.onnx_file}: {_describe(plan)}", flush=True)
        if plan.calibration is not None:
            source = (
                f"reusing the calibration cache {plan.calibration.cache_file}"
                if plan.calibration.reuses_cache
                else f"calibrating on {len(plan.calibration.files)} images, cache {plan.calibration.cache_file}"
            )
            print(f"INT8: {source}", flush=True)
        report = build_engine(plan)
        message = (
            f"TensorRT engine written to {report.engine_file} ({_describe(plan)}, "
            f"{report.size_bytes / 2**20:.1f} MiB, TensorRT {report.tensorrt_version}, {report.seconds:.1f} s)"
        )
        extra: dict[str, Any] = {"trt_engine": str(report.engine_file), "onnx_file": str(plan.onnx_file)}
        if plan.calibration is not None:
            extra["cal_cache_file"] = str(plan.calibration.cache_file)
        if report.layers_set:
            extra["layers_precision"] = report.layers_set
        status.write(SUCCESS, message, **extra)
        print(message, flush=True)
    return 0
