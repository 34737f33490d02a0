# ruff: noqa: RUF009  (the field helpers return dataclasses.field objects, evaluated once by design)
"""``distill.*``: knowledge distillation from a teacher RT-DETR (TAO's ``RTDistillationConfig``)."""

from __future__ import annotations

from dataclasses import dataclass

from model.config.fields import MISSING, dataclass_field, float_field, list_field, str_field
from model.config.model import RTModelConfig

__all__ = ["DistillationBindingConfig", "RTDistillationConfig"]


@dataclass
class DistillationBindingConfig:
    """One ``distill.bindings`` entry: which student output learns from which teacher output."""

    student_module_name: str = str_field(
        "srcs",
        display_name="student module name",
        description="Name of the student module (or output) whose features are distilled.",
    )
    teacher_module_name: str = str_field(
        "srcs",
        display_name="teacher module name",
        description="Name of the teacher module (or output) the student learns from.",
    )
    criterion: str = str_field(
        "IOU",
        display_name="criterion",
        description="Distillation criterion comparing the student and teacher outputs (TAO's template uses IOU).",
    )
    weight: float = float_field(
        1.0,
        display_name="weight",
        description="Weight of this binding's loss.",
        valid_min=0.0,
    )


@dataclass
class RTDistillationConfig:
    """``distill``: teacher model, its checkpoint and the student/teacher bindings."""

    teacher: RTModelConfig = dataclass_field(
        RTModelConfig,
        display_name="teacher",
        description="Configuration hyper parameters for the RT-DETR based teacher model.",
    )
    pretrained_teacher_model_path: str = str_field(
        MISSING,
        display_name="Pretrained teacher model path",
        description="Path to the pre-trained teacher model.",
    )
    bindings: list[DistillationBindingConfig] = list_field(
        [DistillationBindingConfig()],
        item_type=DistillationBindingConfig,
        display_name="bindings",
        description=(
            "List of bindings for distillation: each has student_module_name, teacher_module_name, "
            "criterion and weight."
        ),
    )
    results_dir: str = str_field(
        "",
        display_name="Results directory",
        description="Path to where all the assets generated from a task are stored.",
    )
