# ruff: noqa: RUF009  (the field helpers return dataclasses.field objects, evaluated once by design)
"""``dataset.*``: data sources, loader settings and augmentation (TAO's ``RTDatasetConfig``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model.config.fields import (
    INF,
    bool_field,
    dataclass_field,
    dict_field,
    float_field,
    int_field,
    list_field,
    opt_in,
    str_field,
)

__all__ = ["RTAugmentationConfig", "RTDatasetConfig"]


@dataclass
class RTAugmentationConfig:
    """``dataset.augmentation``: resize scales, spatial sizes and photometric/crop probabilities."""

    multi_scales: list[int] = list_field(
        [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800],
        display_name="multi-scales",
        description="A list of sizes to perform random resize.",
    )
    train_spatial_size: list[int] = list_field(
        [640, 640],
        display_name="train spatial size",
        description="Input resolution to run evaluation during training. This is in the [h, w] order.",
    )
    eval_spatial_size: list[int] = list_field(
        [640, 640],
        display_name="evaluation spatial size",
        description=(
            "Input resolution to run evaluation during validation and testing. This is in the [h, w] order."
        ),
    )
    distortion_prob: float = float_field(
        0.8,
        display_name="distortion probability",
        description="The probability for RandomPhotometricDistort",
        valid_min=0.0,
        valid_max=1.0,
        automl=True,
    )
    iou_crop_prob: float = float_field(
        0.8,
        display_name="iou crop probability",
        description="The probability for RandomIoUCrop",
        valid_min=0.0,
        valid_max=1.0,
        automl=True,
    )
    preserve_aspect_ratio: bool = bool_field(
        False,
        display_name="preserve aspect ratio",
        description="Flag to enable resize with preserving the aspect ratio.",
    )
    mosaic_prob: float = opt_in(
        float_field(
            0.0,
            display_name="mosaic probability",
            description=(
                "The probability that a training sample is a mosaic of four images (more objects, so more "
                "one-to-one matched queries per image). Not a TAO key; 0 keeps TAO's pipeline."
            ),
            valid_min=0.0,
            valid_max=1.0,
            automl=True,
        )
    )
    mixup_prob: float = opt_in(
        float_field(
            0.0,
            display_name="mixup probability",
            description=(
                "The probability that a training sample is blended with a second one, keeping the boxes "
                "of both. Not a TAO key; 0 keeps TAO's pipeline."
            ),
            valid_min=0.0,
            valid_max=1.0,
            automl=True,
        )
    )
    mix_stop_fraction: float = opt_in(
        float_field(
            1.0,
            display_name="mosaic and mixup stop fraction",
            description=(
                "Mosaic and mixup are switched off after this fraction of train.num_epochs, so the last "
                "epochs train on plain images. Not a TAO key."
            ),
            valid_min=0.0,
            valid_max=1.0,
            math_cond="> 0.0",
            automl=True,
        )
    )


@dataclass
class RTDatasetConfig:
    """``dataset``: COCO data sources for every action, loader settings and classes."""

    train_data_sources: list[dict[str, Any]] = list_field(
        [{"image_dir": "", "json_file": ""}],
        display_name="train data sources",
        description=(
            "The list of data sources for training: * image_dir : The directory that contains the "
            "training images (or an images.tar.gz archive) * json_file : The path of the JSON file, "
            "which uses training-annotation COCO format"
        ),
    )
    val_data_sources: dict[str, Any] = dict_field(
        {"image_dir": "", "json_file": ""},
        display_name="validation data sources",
        description=(
            "The data source for validation: * image_dir : The directory that contains the validation "
            "images * json_file : The path of the JSON file, which uses validation-annotation COCO format"
        ),
    )
    test_data_sources: dict[str, Any] = dict_field(
        {"image_dir": "", "json_file": ""},
        display_name="test data sources",
        description=(
            "The data source for testing: * image_dir : The directory that contains the test images "
            "* json_file : The path of the JSON file, which uses test-annotation COCO format"
        ),
    )
    infer_data_sources: dict[str, Any] = dict_field(
        {"image_dir": [""], "classmap": ""},
        display_name="infer data sources",
        description=(
            "The data source for inference: * image_dir : The list of directories that contains the "
            "inference images * classmap : The path of the .txt file that contains class names"
        ),
    )
    quant_calibration_data_sources: dict[str, Any] = dict_field(
        {"image_dir": "", "json_file": ""},
        display_name="quantization calibration data sources",
        description=(
            "The data source for quantization calibration: * image_dir : The directory that contains "
            "the quantization calibration images * json_file (optional) : The path of the JSON file, "
            "which uses quantization calibration-annotation COCO format"
        ),
    )
    batch_size: int = int_field(
        4,
        display_name="batch size",
        description="The batch size for training and validation",
        valid_min=1,
        valid_max=INF,
        automl=True,
    )
    workers: int = int_field(
        8,
        display_name="workers",
        description="The number of parallel workers processing data",
        valid_min=1,
        valid_max=INF,
        automl=True,
    )
    remap_mscoco_category: bool = bool_field(
        False,
        display_name="remap mscoco category",
        description=(
            "Flag to enable mapping of MSCOCO 91 classes to 80. Only required if we're directly training "
            "using the original COCO annotation files. For custom dataset, this value needs to be set False"
        ),
    )
    pin_memory: bool = bool_field(
        True,
        display_name="pin_memory",
        description=(
            "Flag to enable the dataloader to allocate page-locked memory for faster transfer of data "
            "between the CPU and GPU."
        ),
    )
    dataset_type: str = str_field(
        "serialized",
        display_name="dataset type",
        description=(
            "If set to default, we follow the standard CocoDetection dataset structure from torchvision, "
            "which loads the COCO annotation in every subprocess. This leads to redundant copies of data "
            "and can cause RAM to explode if workers is high. If set to serialized, the data is "
            "serialized through pickle and torch.Tensor, which allows the data to be shared across "
            "subprocesses. As a result, RAM usage can be greatly improved."
        ),
        options=["serialized", "default"],
    )
    num_classes: int = int_field(
        80,
        display_name="num classes",
        description="The number of classes in the training data (the largest category id + 1)",
        valid_min=1,
        valid_max=INF,
        math_cond=">0",
    )
    eval_class_ids: list[int] = list_field(
        [1],
        display_name="eval class ids",
        description="IDs of the classes for evaluation.",
    )
    augmentation: RTAugmentationConfig = dataclass_field(
        RTAugmentationConfig,
        display_name="augmentation",
        description="Configuration parameters for data augmentation",
    )
