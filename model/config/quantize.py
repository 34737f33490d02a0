# ruff: noqa: RUF009  (the field helpers return dataclasses.field objects, evaluated once by design)
"""``quantize.*``: post-training quantization (TAO's ``ModelQuantizationConfig``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model.config.fields import dataclass_field, dict_field, int_field, list_field, str_field

__all__ = ["QUANT_DTYPES", "LayerQuantizationConfig", "ModelQuantizationConfig", "QuantizationTensorConfig"]

QUANT_DTYPES = ("int8", "fp8_e4m3fn", "fp8_e5m2", "native")
"""Data types TAO documents for ``quantize.layers[*].weights|activations.dtype``."""


@dataclass
class QuantizationTensorConfig:
    """How one tensor kind (weights or activations) of the matched modules is quantized."""

    dtype: str = str_field(
        "",
        display_name="Quantization data type",
        description="Data type to use for quantization (e.g., 'int8', 'fp8_e4m3fn', 'fp8_e5m2', 'native')",
        required=True,
    )
    observer_or_fake_quant: str = str_field(
        "",
        display_name="Observer or fake quant",
        description="Name of the observer (PTQ) or fake quant (QAT) to use for collecting statistics",
    )
    quant_axis: int | None = int_field(
        None,
        display_name="Quantization axis",
        description=(
            "Axis along which to apply per-channel quantization. If None, per-tensor quantization is used"
        ),
    )
    observer_or_fake_quant_kwargs: dict[str, Any] = dict_field(
        {},
        display_name="Observer kwargs",
        description="Additional keyword arguments to pass to the observer or fake quant constructor",
    )


@dataclass
class LayerQuantizationConfig:
    """One ``quantize.layers`` entry: a module name pattern and how to quantize what matches."""

    module_name: str = str_field(
        "",
        display_name="Module name",
        description=(
            "Name or pattern (fnmatch, case-sensitive) specifying the module(s) to quantize: a qualified "
            "module name, a layer type such as Conv2d, or a wildcard pattern"
        ),
        required=True,
    )
    weights: QuantizationTensorConfig | None = dataclass_field(
        QuantizationTensorConfig,
        optional=True,
        display_name="Weight quantization",
        description="Weight quantization configuration. If None, weights are not quantized",
    )
    activations: QuantizationTensorConfig | None = dataclass_field(
        QuantizationTensorConfig,
        optional=True,
        display_name="Activation quantization",
        description="Activation quantization configuration. If None, activations are not quantized",
    )


@dataclass
class ModelQuantizationConfig:
    """``quantize``: backend, mode, algorithm and per-layer settings."""

    backend: str = str_field(
        "torchao",
        display_name="Quantization backend",
        description="The quantization backend to use",
        options=["modelopt.pytorch", "torchao", "modelopt.onnx"],
    )
    mode: str = str_field(
        "weight_only_ptq",
        display_name="Quantization mode",
        description="The quantization mode to use",
        options=["static_ptq", "weight_only_ptq"],
    )
    algorithm: str = str_field(
        "minmax",
        display_name="Calibration algorithm",
        description=(
            "Calibration/optimization algorithm. Used by ModelOpt backends (modelopt.pytorch and "
            "modelopt.onnx). Ignored by torchao backend."
        ),
        options=["minmax", "max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"],
    )
    layers: list[LayerQuantizationConfig] = list_field(
        [],
        item_type=LayerQuantizationConfig,
        display_name="Layer quantization configs",
        description=(
            "List of per-module quantization configurations. Each entry specifies which modules to "
            "quantize and their data types. This is the primary way to configure quantization."
        ),
    )
    skip_names: list[str] = list_field(
        [],
        display_name="Skip names",
        description="List of module/layer names or patterns to exclude from quantization",
    )
    model_path: str = str_field(
        "",
        display_name="Model path",
        description="Path to the model to be quantized. For ONNX backend, path to ONNX file.",
        required=True,
    )
    results_dir: str = str_field(
        "",
        display_name="Results directory",
        description="Path to where all the assets generated from a task are stored.",
        required=True,
    )
    backend_kwargs: dict[str, Any] = dict_field(
        {},
        display_name="Backend kwargs",
        description="Additional keyword arguments to pass to the backend",
    )
    device: str = str_field(
        "cuda",
        display_name="Calibration device",
        description=(
            "Device to use for calibration. Accepts 'cuda' (uses default GPU), 'cpu', 'trt' (TensorRT "
            "for ONNX backend), or specific GPU device like 'cuda:0', 'cuda:1', etc. If 'cuda' is "
            "specified but no GPU is available, the framework will automatically fall back to 'cpu'. "
            "Note: 'trt' is only supported by the modelopt.onnx backend for ONNX Runtime with TensorRT "
            "execution provider."
        ),
        regex=r"^(cuda|cpu|trt|cuda:[0-9]+)$",
    )
