# ruff: noqa: RUF009  (the field helpers return dataclasses.field objects, evaluated once by design)
"""``model.*``: the RT-DETR architecture and loss settings (TAO's ``RTModelConfig``).

The same class describes ``distill.teacher``.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.config.fields import (
    INF,
    bool_field,
    dataclass_field,
    float_field,
    int_field,
    list_field,
    opt_in,
    str_field,
)

__all__ = ["BACKBONES", "FrozenFMConfig", "RTModelConfig"]

BACKBONES = (
    "resnet_18",
    "resnet_34",
    "resnet_50",
    "resnet_101",
    "convnext_tiny",
    "convnext_small",
    "convnext_base",
    "convnext_large",
    "convnext_xlarge",
    "fan_tiny",
    "fan_small",
    "fan_base",
    "fan_large",
    "efficientvit_b0",
    "efficientvit_b1",
    "efficientvit_b2",
    "efficientvit_b3",
    "efficientvit_l0",
    "efficientvit_l1",
    "efficientvit_l2",
    "efficientvit_l3",
)
"""Every ``model.backbone`` value TAO accepts, in TAO's order."""


@dataclass
class FrozenFMConfig:
    """``model.frozen_fm``: an optional frozen foundation model added to RT-DETR."""

    enabled: bool = bool_field(
        False,
        display_name="Enable frozen FM",
        description="Flag to enable frozen foundation model to be added to RT-DETR.",
    )
    backbone: str = str_field(
        "radio_v2-l",
        display_name="Name of the frozen foundation model",
        description="Name of the frozen foundation model.",
        options=["radio_v2-b", "radio_v2-l", "radio_v2-h"],
    )
    checkpoint: str = str_field(
        "",
        display_name="Pretrained foundation model path or name",
        description="Path to a pretrained foundation model.",
    )


@dataclass
class RTModelConfig:
    """``model``: backbone, hybrid encoder, decoder, denoising, matcher and loss weights."""

    pretrained_backbone_path: str = str_field(
        "",
        display_name="pretrained backbone path",
        description="[Optional] Path to a pretrained backbone file.",
    )
    backbone: str = str_field(
        "resnet_50",
        display_name="backbone",
        description=(
            "The backbone name of the model. TAO implementation of RT-DETR support ResNet, "
            "EfficientViT, FAN, and ConvNext."
        ),
        options=list(BACKBONES),
    )
    train_backbone: bool = bool_field(
        True,
        display_name="Train backbone",
        description=(
            "Flag to set backbone weights as trainable or frozen. When set to `False`, the backbone "
            "weights will be frozen."
        ),
    )
    load_teacher_enc_dec: bool = bool_field(
        False,
        display_name="Load teacher's encoder and decoder weights",
        description="Flag to load teacher's encoder and decoder weights.",
    )
    num_queries: int = int_field(
        300,
        display_name="number of queries",
        description="The number of queries",
        valid_min=1,
        valid_max=INF,
        parent_param=True,
        automl=True,
    )
    num_select: int = int_field(
        300,
        display_name="num select",
        description=(
            "The number of top-K predictions selected during post-process. "
            "Must be < num_queries * num_classes"
        ),
        valid_min=1,
        valid_max=1000,
        depends_on="model.num_queries",
        automl=True,
    )
    num_feature_levels: int = int_field(
        3,
        display_name="number of feature levels",
        description="The number of feature levels to use in the model",
        valid_min=1,
        valid_max=4,
    )
    return_interm_indices: list[int] = list_field(
        [1, 2, 3],
        display_name="return interim indices",
        description=(
            "The index of feature levels to use in the model. The length must match `num_feature_levels`."
        ),
    )
    feat_strides: list[int] = list_field(
        [8, 16, 32],
        display_name="feature strides",
        description="The stride used as grid size of positional embedding at each encoder layer.",
    )
    feat_channels: list[int] = list_field(
        [256, 256, 256],
        display_name="feature channels",
        description="The feature channel sizes in decoder.",
    )
    use_encoder_idx: list[int] = list_field(
        [2],
        display_name="use encoder index",
        description="The index of multi-scale backbone features to pass to encoder.",
    )
    hidden_dim: int = int_field(256, description="Dimension of the hidden units.", automl=False)
    nheads: int = int_field(8, display_name="nheads", description="Number of heads")
    dropout_ratio: float = float_field(
        0.0,
        display_name="drop out ratio",
        description="The probability to drop hidden units.",
        valid_min=0.0,
        valid_max=1.0,
    )
    enc_layers: int = int_field(
        1,
        display_name="encoder layers",
        description="Number of encoder layers in the transformer",
        valid_min=1,
        automl=True,
    )
    dim_feedforward: int = int_field(
        1024,
        display_name="dim feedforward",
        description="Dimension of the feedforward network",
        valid_min=1,
    )
    pe_temperature: int = int_field(
        10000,
        display_name="pe_temperature",
        description="The temperature applied to the positional sine embedding.",
        valid_min=1,
        valid_max=INF,
    )
    expansion: float = float_field(
        1,
        display_name="expansion",
        description=(
            "The expansion ratio for the hidden dimension used in CSPRepLayer (the official R18 "
            "setting is 0.5)."
        ),
        valid_min=0,
        valid_max=INF,
    )
    depth_mult: int = int_field(
        1,
        display_name="depth multiplier",
        description="The number of RepVGGBlock used in CSPRepLayer.",
        valid_min=1,
        valid_max=INF,
    )
    enc_act: str = str_field(
        "gelu",
        display_name="encoder activation",
        description="The activation used for the encoder.",
    )
    act: str = str_field(
        "silu",
        display_name="activation",
        description="The activation used for top-down FPN and bottom-up PAN.",
    )
    dec_layers: int = int_field(
        6,
        display_name="decoder layers",
        description="Number of decoder layers in the transformer",
        valid_min=1,
        automl=True,
    )
    dn_number: int = int_field(
        100,
        display_name="denoising number",
        description="The number of denoising queries.",
        valid_min=0,
        valid_max=INF,
    )
    eval_idx: int = int_field(
        -1,
        display_name="evaluation index",
        description=(
            "The index of decoder layer to use for evaluation. By default, use the last decoder layer."
        ),
        valid_min=-1,
        valid_max=INF,
    )
    vfl_loss_coef: float = float_field(
        1.0,
        display_name="varifocal loss coefficient",
        description="The relative weight of the varifocal error in the loss function.",
        valid_min=0.0,
        valid_max=INF,
    )
    bbox_loss_coef: float = float_field(
        5.0,
        display_name="BBox loss coefficient",
        description=(
            "The relative weight of the L1 error of the bounding box coordinates in the loss function."
        ),
        valid_min=0.0,
        valid_max=INF,
    )
    giou_loss_coef: float = float_field(
        2.0,
        display_name="GIoU loss coefficient",
        description="The relative weight of the GIoU loss of the bounding box in the loss function.",
        valid_min=0.0,
        valid_max=INF,
    )
    class_cost: float = float_field(
        2.0,
        display_name="Class cost coefficient",
        description="The relative weight of the classification error in the matching cost.",
        valid_min=0.0,
        valid_max=INF,
    )
    bbox_cost: float = float_field(
        5.0,
        display_name="BBox cost coefficient",
        description=(
            "The relative weight of the L1 error of the bounding box coordinates in the matching cost."
        ),
        valid_min=0.0,
        valid_max=INF,
    )
    giou_cost: float = float_field(
        2.0,
        display_name="GIoU cost coefficient",
        description="The relative weight of the GIoU loss of the bounding box in the matching cost.",
        valid_min=0.0,
        valid_max=INF,
    )
    alpha: float = float_field(
        0.75,
        display_name="alpha",
        description="The alpha value in the varifocal loss.",
        math_cond="> 0.0",
    )
    gamma: float = float_field(
        2.0,
        display_name="gamma",
        description="The gamma value in the varifocal loss.",
        math_cond="> 0.0",
    )
    class_loss: str = opt_in(
        str_field(
            "vfl",
            display_name="classification loss",
            description=(
                "The classification loss that stands for 'vfl' in loss_types: * vfl : varifocal loss "
                "(TAO, RT-DETR) * mal : matchability-aware loss (DEIM): the target of a matched query is "
                "IoU ** mal_gamma with full weight, so low-IoU matches still learn. Not a TAO key."
            ),
            options=["vfl", "mal"],
            automl=True,
        )
    )
    mal_gamma: float = opt_in(
        float_field(
            1.5,
            display_name="MAL gamma",
            description=(
                "The exponent of the matchability-aware loss (class_loss=mal) on the IoU target and on the "
                "unmatched queries' scores. Not a TAO key."
            ),
            valid_min=0.0,
            valid_max=5.0,
            math_cond="> 0.0",
            automl=True,
        )
    )
    clip_max_norm: float = float_field(0.1, display_name="clip max norm")
    aux_loss: bool = bool_field(
        True,
        display_name="Auxiliary Loss",
        description=(
            "A flag specifying whether to use auxiliary decoding losses (loss at each decoder layer)"
        ),
    )
    loss_types: list[str] = list_field(
        ["vfl", "boxes"],
        display_name="loss_types",
        description="Losses to be used during training",
    )
    backbone_names: list[str] = list_field(
        ["backbone.0"],
        display_name="Backbone tensor name prefix",
        description="Prefix of the tensor names corresponding to the backbone.",
    )
    linear_proj_names: list[str] = list_field(
        ["reference_points", "sampling_offsets"],
        display_name="linear projection names",
        description="Linear projection layer names.",
    )
    distillation_loss_coef: float = float_field(
        1.0,
        display_name="distillation loss coefficient",
        description="The coefficient for the distillation loss during distill.",
        valid_min=0.0,
    )
    frozen_fm: FrozenFMConfig = dataclass_field(
        FrozenFMConfig,
        description="Configurable parameters to construct the frozen foundation model.",
    )
