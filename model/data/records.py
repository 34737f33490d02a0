"""The table of usable images and their boxes, as plain lists or as compact numpy arrays.

``dataset.dataset_type: serialized`` keeps the table in a handful of numpy arrays (file paths as
one byte buffer plus offsets, boxes and labels as flat arrays plus per-image offsets), so a
DataLoader worker that forks or unpickles the dataset gets a few large buffers instead of one
Python object per image (whose reference counts would make copy-on-write copy the whole table
into every worker). ``default`` keeps a list of ``ImageRecord``. Both give identical records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["ImageRecord", "ListRecords", "PackedRecords", "RecordTable", "build_table"]


@dataclass(frozen=True)
class ImageRecord:
    """One usable image: its file, COCO id and size, and its boxes (``xyxy`` pixels) and labels."""

    path: str
    image_id: int
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2 in pixels
    labels: np.ndarray  # (N,) int64
    category_ids: np.ndarray  # (N,) int64, the json's ids (equal to labels unless remapped)


class RecordTable(Protocol):
    """What the dataset needs from a table: its length, one record, and the box count."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> ImageRecord: ...

    @property
    def num_boxes(self) -> int: ...


class ListRecords:
    """``dataset_type: default``: a plain list of records."""

    def __init__(self, records: Sequence[ImageRecord]):
        self._records = list(records)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> ImageRecord:
        return self._records[index]

    @property
    def num_boxes(self) -> int:
        return sum(len(r.labels) for r in self._records)


class PackedRecords:
    """``dataset_type: serialized``: the same records in flat numpy arrays (no per-image objects)."""

    def __init__(self, records: Sequence[ImageRecord]):
        paths = [r.path.encode("utf-8") for r in records]
        self._path_bytes = np.frombuffer(b"".join(paths), dtype=np.uint8).copy()
        self._path_offsets = np.zeros(len(paths) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in paths], out=self._path_offsets[1:])
        self._image_ids = np.asarray([r.image_id for r in records], dtype=np.int64)
        self._sizes = np.asarray([(r.width, r.height) for r in records], dtype=np.int64).reshape(-1, 2)
        self._box_offsets = np.zeros(len(records) + 1, dtype=np.int64)
        np.cumsum([len(r.labels) for r in records], out=self._box_offsets[1:])
        self._boxes = np.concatenate([r.boxes for r in records] or [np.zeros((0, 4))]).astype(np.float32)
        self._boxes = self._boxes.reshape(-1, 4)
        self._labels = np.concatenate([r.labels for r in records] or [np.zeros(0)]).astype(np.int64)
        self._category_ids = np.concatenate([r.category_ids for r in records] or [np.zeros(0)]).astype(
            np.int64
        )

    def __len__(self) -> int:
        return len(self._image_ids)

    def __getitem__(self, index: int) -> ImageRecord:
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} out of range for {len(self)} images")
        index %= len(self)
        start, stop = self._path_offsets[index], self._path_offsets[index + 1]
        first, last = self._box_offsets[index], self._box_offsets[index + 1]
        width, height = self._sizes[index]
        return ImageRecord(
            path=self._path_bytes[start:stop].tobytes().decode("utf-8"),
            image_id=int(self._image_ids[index]),
            width=int(width),
            height=int(height),
            boxes=self._boxes[first:last].copy(),
            labels=self._labels[first:last].copy(),
            category_ids=self._category_ids[first:last].copy(),
        )

    @property
    def num_boxes(self) -> int:
        return len(self._labels)


def build_table(records: Sequence[ImageRecord], serialized: bool) -> RecordTable:
    """Pack ``records`` for ``dataset_type`` (``serialized`` -> numpy arrays, else a list)."""
    return PackedRecords(records) if serialized else ListRecords(records)
