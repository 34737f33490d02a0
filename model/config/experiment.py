# ruff: noqa: RUF009  (the field helpers return dataclasses.field objects, evaluated once by design)
"""The top level of a spec: ``ExperimentConfig`` (TAO's RT-DETR ``ExperimentConfig``).

Section order is TAO's, and is the key order of the generated spec templates.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.config.dataset import RTDatasetConfig
from model.config.deploy import (
    RTEvalExpConfig,
    RTExportExpConfig,
    RTInferenceExpConfig,
)
from model.config.distill import RTDistillationConfig
from model.config.fields import bool_field, dataclass_field, list_field, str_field
from model.config.model import RTModelConfig
from model.config.quantize import ModelQuantizationConfig
from model.config.train import RTTrainExpConfig
from model.config.trt_engine import RTGenTrtEngineExpConfig

__all__ = ["ExperimentConfig", "WandBConfig"]


@dataclass
class WandBConfig:
    """``wandb``: Weights & Biases settings, kept so TAO specs load unchanged."""

    enable: bool = bool_field(True)
    project: str = str_field("TAO Toolkit")
    entity: str = str_field("")
    group: str = str_field("")
    tags: list[str] = list_field(["tao-toolkit"])
    reinit: bool = bool_field(False)
    sync_tensorboard: bool = bool_field(False)
    save_code: bool = bool_field(False)
    name: str = str_field("TAO Toolkit Training")
    run_id: str = str_field("")


@dataclass
class ExperimentConfig:
    """A whole RT-DETR spec: every section every action reads."""

    model_name: str = str_field(
        "",
        display_name="Model name",
        description="Name of model if invoking task via :code:`model_agnostic`",
    )
    encryption_key: str = str_field(
        "",
        display_name="Encryption key",
        description="Key for encrypting model checkpoints",
    )
    results_dir: str = str_field(
        "",
        display_name="Results directory",
        description="Path to where all the assets generated from a task are stored.",
    )
    wandb: WandBConfig = dataclass_field(WandBConfig)
    model: RTModelConfig = dataclass_field(
        RTModelConfig,
        description="Configurable parameters to construct the model for a RT-DETR experiment.",
    )
    dataset: RTDatasetConfig = dataclass_field(
        RTDatasetConfig,
        description="Configurable parameters to construct the dataset for a RT-DETR experiment.",
    )
    train: RTTrainExpConfig = dataclass_field(
        RTTrainExpConfig,
        description="Configurable parameters to construct the trainer for a RT-DETR experiment.",
    )
    evaluate: RTEvalExpConfig = dataclass_field(
        RTEvalExpConfig,
        description="Configurable parameters to construct the evaluator for a RT-DETR experiment.",
    )
    inference: RTInferenceExpConfig = dataclass_field(
        RTInferenceExpConfig,
        description="Configurable parameters to construct the inferencer for a RT-DETR experiment.",
    )
    export: RTExportExpConfig = dataclass_field(
        RTExportExpConfig,
        description="Configurable parameters to construct the exporter for a RT-DETR experiment.",
    )
    gen_trt_engine: RTGenTrtEngineExpConfig = dataclass_field(
        RTGenTrtEngineExpConfig,
        description=(
            "Configurable parameters to construct the TensorRT engine builder for a RT-DETR experiment."
        ),
    )
    distill: RTDistillationConfig | None = dataclass_field(
        RTDistillationConfig,
        optional=True,
        description="Configurable parameters to construct the distiller for a RT-DETR experiment.",
    )
    quantize: ModelQuantizationConfig = dataclass_field(
        ModelQuantizationConfig,
        description="Configurable parameters to run model quantization for a RT-DETR experiment.",
    )
