"""Deployed RT-DETR models: the ONNX export (``onnx_export``), the runner that evaluates or infers
with an exported ``.onnx`` file (ONNX Runtime) or a TensorRT ``.engine`` (``deployed_model``,
``trt_engine_runner``), and the TensorRT engine build (``trt_engine_plan`` checks the inputs
without TensorRT, ``trt_calibration`` feeds INT8 calibration, ``trt_builder`` builds)."""

from __future__ import annotations

__all__ = [
    "deployed_model",
    "onnx_export",
    "trt_builder",
    "trt_calibration",
    "trt_engine_plan",
    "trt_engine_runner",
]
