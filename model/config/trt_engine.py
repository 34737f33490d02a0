# ruff: noqa: RUF009  (the field helpers return dataclasses.field objects, evaluated once by design)
"""``gen_trt_engine.*``: the TensorRT engine build, its precision, batch profile and INT8 calibration."""

from __future__ import annotations

from dataclasses import dataclass

from model.config.fields import (
    MISSING,
    bool_field,
    dataclass_field,
    int_field,
    list_field,
    str_field,
)

__all__ = ["CalibrationConfig", "RTGenTrtEngineExpConfig", "RTTrtConfig"]

_RESULTS_DIR = "Path to where all the assets generated from a task are stored."


@dataclass
class CalibrationConfig:
    """``gen_trt_engine.tensorrt.calibration``: INT8 entropy calibration."""

    cal_image_dir: list[str] = list_field(
        [],
        display_name="Calibration image directories",
        description=(
            "List of image directories to be used for calibration when running Post Training "
            "Quantization using TensorRT."
        ),
    )
    cal_cache_file: str = str_field(
        "",
        display_name="Calibration cache file",
        description=(
            "The path to save the calibration cache file containing scales that were generated during "
            "Post Training Quantization. Needed for INT8; an existing cache is reused."
        ),
    )
    cal_batch_size: int = int_field(
        1,
        display_name="Calibration batch size",
        description="The batch size of the input TensorRT to run calibration on.",
        valid_min=1,
        popular=True,
    )
    cal_batches: int = int_field(
        1,
        display_name="Number of calibration batches",
        description=(
            "The number of input tensor batches to run calibration on. It is recommended to use at "
            "least 10% of the training images."
        ),
        valid_min=1,
        popular=True,
    )


@dataclass
class RTTrtConfig:
    """``gen_trt_engine.tensorrt``: TensorRT builder settings and the batch profile."""

    data_type: str = str_field(
        "FP32",
        display_name="data type",
        description="The precision to be set for building the TensorRT engine.",
        options=["FP32", "FP16", "INT8"],
    )
    workspace_size: int = int_field(
        1024,
        display_name="Max workspace size",
        description=(
            "The size (in MB) of the workspace TensorRT has to run its optimization tactics and "
            "generate the TensorRT engine."
        ),
        valid_min=0,
    )
    min_batch_size: int = int_field(
        1,
        display_name="Min batch size",
        description=(
            "The minimum batch size in the optimization profile for the input tensor of the TensorRT engine."
        ),
        valid_min=1,
        popular=True,
    )
    opt_batch_size: int = int_field(
        1,
        display_name="Optimum batch size",
        description=(
            "The optimum batch size in the optimization profile for the input tensor of the TensorRT engine."
        ),
        valid_min=1,
        popular=True,
    )
    max_batch_size: int = int_field(
        4,
        display_name="Maximum batch size",
        description=(
            "The maximum batch size in the optimization profile for the input tensor of the TensorRT engine."
        ),
        valid_min=1,
    )
    layers_precision: list[str] = list_field(
        [],
        display_name="layers_precision",
        description='The list to specify layer precision, as "layer_name:precision" strings.',
    )
    calibration: CalibrationConfig = dataclass_field(
        CalibrationConfig,
        description="The configuration elements to define the TensorRT calibrator for int8 PTQ.",
    )


@dataclass
class RTGenTrtEngineExpConfig:
    """``gen_trt_engine``: ONNX -> TensorRT engine."""

    results_dir: str = str_field("", display_name="Results directory", description=_RESULTS_DIR)
    gpu_id: int = int_field(
        0,
        display_name="GPU ID",
        description="The index of the GPU to build the TensorRT engine.",
        valid_min=0,
        popular=True,
    )
    onnx_file: str = str_field(MISSING, display_name="ONNX file", description="Path to the ONNX model file.")
    trt_engine: str = str_field(
        MISSING,
        display_name="TensorRT engine",
        description="Path where the generated TensorRT engine is stored.",
    )
    timing_cache: str = str_field(
        "",
        display_name="TensorRT timing cache",
        description=(
            "Path to a TensorRT timing cache that speeds up engine generation. "
            "This will be created/read/updated."
        ),
    )
    batch_size: int = int_field(
        -1,
        display_name="Batch size",
        description=(
            "The batch size of the input Tensor for the engine. A value of :code:`-1` implies dynamic "
            "tensor shapes."
        ),
        valid_min=-1,
        popular=True,
    )
    verbose: bool = bool_field(
        False,
        display_name="Verbose",
        description="Flag to enable verbose TensorRT logging.",
    )
    tensorrt: RTTrtConfig = dataclass_field(
        RTTrtConfig,
        display_name="TensorRT hyper params.",
        description="Hyper parameters to configure the TensorRT Engine builder.",
    )
