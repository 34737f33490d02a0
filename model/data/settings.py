"""The ``dataset.*`` keys the data layer reads, taken from a resolved spec and checked.

A resolved spec (nested dict) normally holds every key; a missing key takes TAO's default from
``model.config.dataset``. Values a user can get wrong raise ``DataError`` naming the key.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model.config.defaults import with_defaults
from model.data.transforms import AugmentationSettings
from model.errors import DataError

__all__ = ["SPLIT_KEYS", "DataSettings", "data_settings"]

SPLIT_KEYS = {
    "train": "dataset.train_data_sources",
    "val": "dataset.val_data_sources",
    "test": "dataset.test_data_sources",
}
DATASET_TYPES = ("serialized", "default")


@dataclass(frozen=True)
class DataSettings:
    """Everything the loaders need from ``dataset``; sources are ``(key, image_dir, json_file)``."""

    train_sources: tuple[tuple[str, str, str], ...]
    val_source: tuple[str, str, str]
    test_source: tuple[str, str, str]
    infer_image_dirs: tuple[str, ...]
    classmap: str
    num_classes: int
    remap_mscoco_category: bool
    batch_size: int
    workers: int
    pin_memory: bool
    serialized: bool
    augmentation: AugmentationSettings

    def sources(self, split: str) -> tuple[tuple[str, str, str], ...]:
        if split == "train":
            return self.train_sources
        if split in ("val", "test"):
            return (self.val_source if split == "val" else self.test_source,)
        raise DataError(f"unknown data split {split!r}; use one of train, val, test")


def _int(value: Any, key: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise DataError(f"{key}: {value!r} must be an integer >= {minimum}")
    return int(value)


def _prob(value: Any, key: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise DataError(f"{key}: {value!r} must be a probability between 0 and 1")
    return float(value)


def _fraction(value: Any, key: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 < value <= 1.0:
        raise DataError(f"{key}: {value!r} must be a fraction in (0, 1] (greater than 0, at most 1)")
    return float(value)


def _size(value: Any, key: str) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise DataError(f"{key}: {value!r} must be a [height, width] list of two integers, e.g. [640, 640]")
    return (_int(value[0], f"{key}[0]", 1), _int(value[1], f"{key}[1]", 1))


def _source(value: Any, key: str) -> tuple[str, str, str]:
    if not isinstance(value, Mapping):
        raise DataError(f"{key}: {value!r} must be a mapping with image_dir and json_file")
    return (key, str(value.get("image_dir") or ""), str(value.get("json_file") or ""))


def data_settings(spec: Mapping[str, Any]) -> DataSettings:
    """Read and check ``spec['dataset']`` (a resolved spec; missing keys take TAO's defaults)."""
    given = spec.get("dataset") if isinstance(spec, Mapping) else None
    if not isinstance(given, Mapping):
        raise DataError("the spec has no 'dataset' section; add dataset.train_data_sources and the rest")
    d = with_defaults(given, "dataset")
    aug = d["augmentation"]
    train = d["train_data_sources"]
    if isinstance(train, Mapping):
        train = [train]
    if not isinstance(train, list) or not train:
        raise DataError(
            f"dataset.train_data_sources: {train!r} must be a list of {{image_dir, json_file}} mappings"
        )
    infer = d["infer_data_sources"] if isinstance(d["infer_data_sources"], Mapping) else {}
    infer_dirs = infer.get("image_dir") or []
    if isinstance(infer_dirs, str):
        infer_dirs = [infer_dirs]
    scales = aug["multi_scales"] or []
    if not isinstance(scales, (list, tuple)):
        raise DataError(f"dataset.augmentation.multi_scales: {scales!r} must be a list of sizes in pixels")
    if d["dataset_type"] not in DATASET_TYPES:
        raise DataError(
            f"dataset.dataset_type: {d['dataset_type']!r} must be one of {', '.join(DATASET_TYPES)}"
        )
    return DataSettings(
        train_sources=tuple(_source(s, f"dataset.train_data_sources[{i}]") for i, s in enumerate(train)),
        val_source=_source(d["val_data_sources"], "dataset.val_data_sources"),
        test_source=_source(d["test_data_sources"], "dataset.test_data_sources"),
        infer_image_dirs=tuple(str(p) for p in infer_dirs if p),
        classmap=str(infer.get("classmap") or ""),
        num_classes=_int(d["num_classes"], "dataset.num_classes", 1),
        remap_mscoco_category=bool(d["remap_mscoco_category"]),
        batch_size=_int(d["batch_size"], "dataset.batch_size", 1),
        workers=_int(d["workers"], "dataset.workers", 0),
        pin_memory=bool(d["pin_memory"]),
        serialized=d["dataset_type"] == "serialized",
        augmentation=AugmentationSettings(
            multi_scales=tuple(
                _int(s, f"dataset.augmentation.multi_scales[{i}]", 1) for i, s in enumerate(scales)
            ),
            train_spatial_size=_size(aug["train_spatial_size"], "dataset.augmentation.train_spatial_size"),
            eval_spatial_size=_size(aug["eval_spatial_size"], "dataset.augmentation.eval_spatial_size"),
            distortion_prob=_prob(aug["distortion_prob"], "dataset.augmentation.distortion_prob"),
            iou_crop_prob=_prob(aug["iou_crop_prob"], "dataset.augmentation.iou_crop_prob"),
            preserve_aspect_ratio=bool(aug["preserve_aspect_ratio"]),
            mosaic_prob=_prob(aug["mosaic_prob"], "dataset.augmentation.mosaic_prob"),
            mixup_prob=_prob(aug["mixup_prob"], "dataset.augmentation.mixup_prob"),
            mix_stop_fraction=_fraction(aug["mix_stop_fraction"], "dataset.augmentation.mix_stop_fraction"),
        ),
    )
