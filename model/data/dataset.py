"""The torch ``Dataset`` of one split: its sources' records, image decoding and the transform.

``build_dataset(spec, split)`` loads every source of the split (several train sources are
concatenated in order), packs the records as ``dataset.dataset_type`` asks and attaches the
train or eval transform. An item is ``(image (3, h, w) float, target dict)``; the loader's batch
sampler may ask for ``(index, (h, w))`` to choose the batch's multi-scale size, or for a
``SampledItem`` ``(index, size, mixing)``: with ``mixing`` set, a training set with a non-zero
``mosaic_prob`` or ``mixup_prob`` builds a mosaic / mixup sample (``mix_augment.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from model.data.coco_source import CocoSource, coco_ground_truth, load_coco_source
from model.data.mix_augment import Decoded, MixAugmentation
from model.data.mscoco import label_to_category_id
from model.data.records import RecordTable, build_table
from model.data.samplers import SampledItem
from model.data.settings import DataSettings, data_settings
from model.data.transforms import DetectionTransform
from model.errors import DataError

__all__ = ["CocoDetectionDataset", "build_dataset", "read_rgb"]


def read_rgb(path: str) -> torch.Tensor:
    """Decode an image file to a (3, H, W) uint8 RGB tensor; a DataError names an unreadable file."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(
            f"image {path!r} cannot be decoded ({type(error).__name__}: {error}); replace the file or "
            "remove it from the json"
        ) from error
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


class CocoDetectionDataset(Dataset):
    """Images and targets of one split (see the module doc). Pickles cheaply for workers."""

    def __init__(
        self,
        table: RecordTable,
        transform: DetectionTransform,
        *,
        categories: Sequence[Mapping[str, Any]],
        remap_mscoco_category: bool,
        json_files: Sequence[str],
    ):
        self.table = table
        self.transform = transform
        self.categories = [dict(c) for c in categories]
        self.remap_mscoco_category = remap_mscoco_category
        self.json_files = list(json_files)
        mix = MixAugmentation(transform.settings)
        self.mix = mix if transform.train and mix.active else None

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(
        self, item: int | tuple[int, Sequence[int]] | SampledItem
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if isinstance(item, SampledItem):
            index, size, mixing = item
        elif isinstance(item, tuple):
            (index, size), mixing = item, False
        else:
            index, size, mixing = item, None, False
        if mixing and self.mix is not None:
            return self.mix(int(index), size, len(self), self._decode, self.transform)
        record = self.table[int(index)]
        image = read_rgb(record.path)
        return self.transform(image, record.boxes, record.labels, record.image_id, size)

    def _decode(self, index: int) -> Decoded:
        record = self.table[index]
        return Decoded(read_rgb(record.path), record.boxes, record.labels, record.image_id)

    @property
    def num_boxes(self) -> int:
        return self.table.num_boxes

    def coco_ground_truth(self) -> dict[str, Any]:
        """The usable records as a COCO json dict (original category ids), for pycocotools."""
        return coco_ground_truth(self.table, self.categories)

    def label_to_category_id(self, labels: Any) -> np.ndarray:
        """Category ids of predicted labels (identity unless ``remap_mscoco_category``)."""
        return label_to_category_id(labels, self.remap_mscoco_category)


def _merge_categories(sources: Sequence[CocoSource]) -> list[dict[str, Any]]:
    merged: dict[int, dict[str, Any]] = {}
    for source in sources:
        for category in source.categories:
            merged.setdefault(int(category["id"]), category)
    return [merged[k] for k in sorted(merged)]


def build_dataset(
    spec: Mapping[str, Any] | DataSettings, split: str, *, train_transform: bool | None = None
) -> CocoDetectionDataset:
    """The dataset of ``split`` (``train``, ``val`` or ``test``) described by the spec.

    ``train_transform`` picks the augmenting transform (default: only for ``train``).

    Raises:
        DataError: a source is empty, unreadable, or has a label >= ``dataset.num_classes``.
    """
    settings = spec if isinstance(spec, DataSettings) else data_settings(spec)
    sources = []
    for key, image_dir, json_file in settings.sources(split):
        if not image_dir or not json_file:
            missing = "image_dir" if not image_dir else "json_file"
            raise DataError(
                f"{key}.{missing} is empty; the {split} split needs an image folder (or images.tar.gz) "
                "and a COCO json"
            )
        sources.append(
            load_coco_source(
                image_dir,
                json_file,
                num_classes=settings.num_classes,
                remap_mscoco_category=settings.remap_mscoco_category,
                key=key,
            )
        )
    records = [record for source in sources for record in source.records]
    use_train = split == "train" if train_transform is None else train_transform
    return CocoDetectionDataset(
        build_table(records, settings.serialized),
        DetectionTransform(settings.augmentation, train=use_train),
        categories=_merge_categories(sources),
        remap_mscoco_category=settings.remap_mscoco_category,
        json_files=[s.json_file for s in sources],
    )
