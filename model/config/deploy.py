# ruff: noqa: RUF009  (the field helpers return dataclasses.field objects, evaluated once by design)
"""``evaluate.*``, ``inference.*`` and ``export.*``: the deploy-side actions (``gen_trt_engine.*``:
``trt_engine.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from model.config.fields import (
    MISSING,
    bool_field,
    dict_field,
    float_field,
    int_field,
    list_field,
    str_field,
)

__all__ = ["RTEvalExpConfig", "RTExportExpConfig", "RTInferenceExpConfig"]

_RESULTS_DIR = "Path to where all the assets generated from a task are stored."
_QUANTIZED = "Flag to indicate if the model is quantized"


def _precision_field() -> str:
    """``evaluate.precision`` / ``inference.precision`` (not TAO keys)."""
    return str_field(
        "fp32",
        display_name="precision",
        description=(
            "Precision of the PyTorch model run from the checkpoint: fp32, bf16 (autocast; about twice as "
            "fast on CPUs with AVX512-BF16/AMX) or fp16 (GPU only). A trt_engine keeps the precision "
            "it was built with, so it needs fp32 here. Not a TAO key."
        ),
        options=["fp32", "bf16", "fp16"],
    )


@dataclass
class RTEvalExpConfig:
    """``evaluate``: COCO evaluation of a checkpoint or a TensorRT engine."""

    num_gpus: int = int_field(
        1,
        display_name="Number of GPUs",
        description="The number of GPUs to run the evaluation job.",
        valid_min=1,
        popular=True,
    )
    gpu_ids: list[int] = list_field(
        [0],
        display_name="GPU IDs",
        description=(
            "List of GPU IDs to run the evaluation on. The length of this list must be equal to the "
            "number of gpus in evaluate.num_gpus."
        ),
        popular=True,
    )
    num_nodes: int = int_field(
        1,
        display_name="Number of nodes",
        description="Number of nodes to run the evaluation on. If > 1, then multi-node is enabled.",
        valid_min=1,
        popular=True,
    )
    checkpoint: str = str_field(
        MISSING,
        display_name="Checkpoint path",
        description="Path to the checkpoint used for evaluation.",
    )
    trt_engine: str = str_field(
        "",
        display_name="TensorRT Engine",
        description="Path to the TensorRT engine to be used for evaluation instead of the checkpoint.",
    )
    results_dir: str = str_field("", display_name="Results directory", description=_RESULTS_DIR)
    batch_size: int = int_field(
        -1,
        display_name="batch size",
        description=(
            "The batch size of the input Tensor. This is important if batch_size > 1 for large dataset."
        ),
        valid_min=-1,
    )
    input_width: int | None = int_field(
        None,
        display_name="input width",
        description="Width of the input image tensor.",
        valid_min=1,
    )
    input_height: int | None = int_field(
        None,
        display_name="input height",
        description="Height of the input image tensor.",
        valid_min=1,
    )
    conf_threshold: float = float_field(
        0.0,
        display_name="confidence threshold",
        description=(
            "The value of the confidence threshold to be used when filtering out the final list of boxes."
        ),
    )
    precision: str = _precision_field()
    is_quantized: bool = bool_field(False, display_name=_QUANTIZED, description=_QUANTIZED)


@dataclass
class RTInferenceExpConfig:
    """``inference``: predictions and rendered boxes for a folder of images."""

    num_gpus: int = int_field(
        1,
        display_name="Number of GPUs",
        description="The number of GPUs to run the inference job.",
        valid_min=1,
        popular=True,
    )
    gpu_ids: list[int] = list_field(
        [0],
        display_name="GPU IDs",
        description=(
            "List of GPU IDs to run the inference on. The length of this list must be equal to the "
            "number of gpus in inference.num_gpus."
        ),
        popular=True,
    )
    num_nodes: int = int_field(
        1,
        display_name="Number of nodes",
        description="Number of nodes to run the inference on. If > 1, then multi-node is enabled.",
        valid_min=1,
        popular=True,
    )
    checkpoint: str = str_field(
        MISSING,
        display_name="Checkpoint path",
        description="Path to the checkpoint used for inference.",
    )
    trt_engine: str = str_field(
        "",
        display_name="TensorRT Engine",
        description="Path to the TensorRT engine to be used for inference instead of the checkpoint.",
    )
    results_dir: str = str_field("", display_name="Results directory", description=_RESULTS_DIR)
    batch_size: int = int_field(
        -1,
        display_name="batch size",
        description=(
            "The batch size of the input Tensor. This is important if batch_size > 1 for large dataset."
        ),
        valid_min=-1,
    )
    color_map: dict[str, str] | None = dict_field(
        None,
        display_name="color map",
        description="Class-wise dictionary with colors to render boxes.",
    )
    conf_threshold: float = float_field(
        0.5,
        display_name="confidence threshold",
        description=(
            "The value of the confidence threshold to be used when filtering out the final list of boxes."
        ),
    )
    is_internal: bool = bool_field(
        False,
        display_name="is internal",
        description="Flag to render with internal directory structure.",
    )
    input_width: int = int_field(
        640,
        display_name="input width",
        description="Width of the input image tensor.",
        valid_min=32,
    )
    input_height: int = int_field(
        640,
        display_name="input height",
        description="Height of the input image tensor.",
        valid_min=32,
    )
    outline_width: int = int_field(
        3,
        display_name="outline width",
        description="Width in pixels of the bounding box outline.",
        valid_min=1,
    )
    precision: str = _precision_field()
    is_quantized: bool = bool_field(False, display_name=_QUANTIZED, description=_QUANTIZED)


@dataclass
class RTExportExpConfig:
    """``export``: checkpoint -> ONNX."""

    results_dir: str = str_field("", display_name="Results directory", description=_RESULTS_DIR)
    gpu_id: int = int_field(
        0,
        display_name="GPU ID",
        description="The index of the GPU to build the TensorRT engine.",
    )
    checkpoint: str = str_field(
        MISSING,
        display_name="checkpoint",
        description="Path to the checkpoint file to run export.",
    )
    onnx_file: str = str_field(MISSING, display_name="onnx file", description="Path to the onnx model file.")
    on_cpu: bool = bool_field(
        False,
        display_name="on cpu",
        description="Flag to export CPU compatible model.",
    )
    input_channel: int = int_field(
        3,
        display_name="input channel",
        description="Number of channels in the input Tensor.",
        valid_min=1,
        options=[1, 3],
    )
    input_width: int = int_field(
        640,
        display_name="input width",
        description=(
            "Width of the input image tensor. Defaults to 640: TAO's schema says 960, but a 960x544 "
            "export fails in the hybrid encoder's positional embedding, so TAO's own template uses 640."
        ),
        valid_min=32,
    )
    input_height: int = int_field(
        640,
        display_name="input height",
        description=(
            "Height of the input image tensor. Defaults to 640: TAO's schema says 544, but a 960x544 "
            "export fails in the hybrid encoder's positional embedding, so TAO's own template uses 640."
        ),
        valid_min=32,
    )
    opset_version: int = int_field(
        17,
        display_name="opset version",
        description="Operator set version of the ONNX model used to generate the TensorRT engine.",
        valid_min=1,
    )
    batch_size: int = int_field(
        -1,
        display_name="batch size",
        description=(
            "The batch size of the input Tensor for the engine. A value of :code:`-1` implies dynamic "
            "tensor shapes."
        ),
        valid_min=-1,
    )
    verbose: bool = bool_field(
        False,
        display_name="verbose",
        description="Flag to enable verbose TensorRT logging.",
    )
    format: str = str_field(
        "onnx",
        display_name="export format",
        description="File format to export to.",
        options=["onnx", "xdl"],
    )
    serialize_nvdsinfer: bool = bool_field(
        False,
        display_name="Serialize DeepStream config.",
        description="Flag to enable serializing the required configs for integrating with DeepStream.",
    )
    is_quantized: bool = bool_field(False, display_name=_QUANTIZED, description=_QUANTIZED)
