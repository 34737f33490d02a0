"""Every RT-DETR spec key, declared once as dataclass fields with TAO's schema metadata.

One module per spec section; ``ExperimentConfig`` composes them. ``defaults`` reads the run-time
default of any key or section from them. Importing this package does not import torch.
"""

from __future__ import annotations

from model.config.dataset import RTAugmentationConfig, RTDatasetConfig
from model.config.defaults import default_of, section_defaults, spec_section, with_defaults
from model.config.deploy import (
    RTEvalExpConfig,
    RTExportExpConfig,
    RTInferenceExpConfig,
)
from model.config.distill import DistillationBindingConfig, RTDistillationConfig
from model.config.experiment import ExperimentConfig, WandBConfig
from model.config.fields import INF, MISSING
from model.config.model import BACKBONES, FrozenFMConfig, RTModelConfig
from model.config.quantize import LayerQuantizationConfig, ModelQuantizationConfig, QuantizationTensorConfig
from model.config.train import CuDNNConfig, RTEMAConfig, RTOptimConfig, RTTrainExpConfig
from model.config.trt_engine import CalibrationConfig, RTGenTrtEngineExpConfig, RTTrtConfig

__all__ = [
    "BACKBONES",
    "INF",
    "MISSING",
    "CalibrationConfig",
    "CuDNNConfig",
    "DistillationBindingConfig",
    "ExperimentConfig",
    "FrozenFMConfig",
    "LayerQuantizationConfig",
    "ModelQuantizationConfig",
    "QuantizationTensorConfig",
    "RTAugmentationConfig",
    "RTDatasetConfig",
    "RTDistillationConfig",
    "RTEMAConfig",
    "RTEvalExpConfig",
    "RTExportExpConfig",
    "RTGenTrtEngineExpConfig",
    "RTInferenceExpConfig",
    "RTModelConfig",
    "RTOptimConfig",
    "RTTrainExpConfig",
    "RTTrtConfig",
    "WandBConfig",
    "default_of",
    "section_defaults",
    "spec_section",
    "with_defaults",
]
