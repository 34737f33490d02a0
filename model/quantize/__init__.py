"""Post-training quantization of a trained RT-DETR (``rtdetr quantize``).

- ``combinations``: which backend / mode / algorithm / dtype combinations exist (no torch import).
- ``plan``: which modules get which weight dtype, from ``quantize.layers`` and ``skip_names`` (torchao).
- ``torchao_backend``: weight-only int8 / fp8 with torchao's quantized tensors.
- ``modelopt_backend``: static PTQ (fake-quantized; max, awq_lite or awq_full calibration) with NVIDIA ModelOpt.
- ``modelopt_onnx_backend``: QDQ ONNX files (int8 / fp8 / int4 weight-only) with ModelOpt's ONNX quantization.
- ``onnx_pipeline``: the modelopt.onnx run: export the float model, quantize it, score both files.
- ``float_model``: what every backend measures: the float model, the scored split, mAP and weight size.
- ``results``: the output file names, results.json and the SUCCESS kpis every backend writes.

The quantized checkpoint itself (save, recognise, load) is ``model.checkpoints.quantized_file``.
"""

from __future__ import annotations

__all__ = [
    "combinations",
    "float_model",
    "modelopt_backend",
    "modelopt_onnx_backend",
    "onnx_pipeline",
    "plan",
    "results",
    "torchao_backend",
]
