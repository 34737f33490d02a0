"""The data layer: COCO sources (folders, archives, URLs), transforms and DataLoaders.

Public entry points::

    build_dataloader(spec, split, *, rank=0, world_size=1, seed=0, batch_size=None)  # train|val|test
    build_dataset(spec, split)            # the torch Dataset behind a loader
    build_infer_dataset(spec, size=None)  # images of dataset.infer_data_sources
    build_infer_dataloader(spec, batch_size=None, size=None)
    read_classmap(path) -> list[str]
    load_coco_source(image_dir, json_file, num_classes=..., remap_mscoco_category=...)
    resolve_image_dir(image_dir) / extract_archive(path) / fetch(path_or_url)
    boxes_to_original(boxes_cxcywh, box_scale)  # normalised boxes -> source-image pixels
    label_to_category_id(labels, remap)         # predicted labels -> json category ids
    generate_dataset(out, ...)                  # the synthetic shapes dataset
"""

from __future__ import annotations

from model.data.archive_cache import extract_archive, is_archive, resolve_image_dir
from model.data.coco_source import BadRecordsWarning, CocoSource, coco_ground_truth, load_coco_source
from model.data.dataset import CocoDetectionDataset, build_dataset
from model.data.fetch import fetch, is_url
from model.data.infer_source import InferImageDataset, build_infer_dataset, read_classmap
from model.data.loader import build_dataloader, build_infer_dataloader, collate_detection
from model.data.mscoco import MSCOCO_CATEGORY_IDS, label_to_category_id
from model.data.settings import DataSettings, data_settings
from model.data.synthetic import generate_dataset
from model.data.transforms import AugmentationSettings, DetectionTransform, boxes_to_original

__all__ = [
    "MSCOCO_CATEGORY_IDS",
    "AugmentationSettings",
    "BadRecordsWarning",
    "CocoDetectionDataset",
    "CocoSource",
    "DataSettings",
    "DetectionTransform",
    "InferImageDataset",
    "boxes_to_original",
    "build_dataloader",
    "build_dataset",
    "build_infer_dataloader",
    "build_infer_dataset",
    "coco_ground_truth",
    "collate_detection",
    "data_settings",
    "extract_archive",
    "fetch",
    "generate_dataset",
    "is_archive",
    "is_url",
    "label_to_category_id",
    "load_coco_source",
    "read_classmap",
    "resolve_image_dir",
]
