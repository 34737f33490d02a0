"""The files ``rtdetr inference`` writes per image: KITTI label lines and COCO detection records.

KITTI, as TAO's DETR-family inference writes it (16 fields, boxes in source-image pixels)::

    <class> 0.00 0 0.00 <x1> <y1> <x2> <y2> 0.00 0.00 0.00 0.00 0.00 0.00 0.00 <score>

with three decimals for the box and the score. A class name with spaces is written with ``_``
so every line still splits into 16 fields. COCO results: ``image_id``, ``file_name``,
``category_id``, ``bbox`` ``[x, y, w, h]``, ``score``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

__all__ = ["Detection", "coco_records", "kitti_line", "parse_kitti_line", "unique_output_names"]

_KITTI_FIELDS = 16


@dataclass(frozen=True)
class Detection:
    """One detection in source-image pixels: ``box`` is ``(x1, y1, x2, y2)``."""

    category_id: int
    name: str
    box: tuple[float, float, float, float]
    score: float


def _kitti_name(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip()) or "unnamed"


def kitti_line(det: Detection) -> str:
    x1, y1, x2, y2 = det.box
    return (
        f"{_kitti_name(det.name)} 0.00 0 0.00 {x1:.3f} {y1:.3f} {x2:.3f} {y2:.3f} "
        f"0.00 0.00 0.00 0.00 0.00 0.00 0.00 {det.score:.3f}"
    )


def parse_kitti_line(line: str) -> dict[str, Any]:
    """``{"name", "box", "score"}`` of one KITTI prediction line; ValueError when it is not one."""
    fields = line.split()
    if len(fields) != _KITTI_FIELDS:
        raise ValueError(
            f"a KITTI prediction line has {_KITTI_FIELDS} fields, this one {len(fields)}: {line!r}"
        )
    return {"name": fields[0], "box": tuple(float(v) for v in fields[4:8]), "score": float(fields[15])}


def coco_records(image_id: int, file_name: str, detections: Iterable[Detection]) -> list[dict[str, Any]]:
    records = []
    for det in detections:
        x1, y1, x2, y2 = det.box
        records.append(
            {
                "image_id": int(image_id),
                "file_name": file_name,
                "category_id": int(det.category_id),
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(float(det.score), 5),
            }
        )
    return records


def unique_output_names(file_names: Sequence[str]) -> list[str]:
    """Output names for the inputs in order: each input's relative name, made unique.

    Two sources may hold the same relative name (a folder and an archive of the same images); the
    first keeps it and later ones get ``_2``, ``_3``... before the suffix, so no output overwrites
    another and the label file stem always matches its annotated image.
    """
    stems: set[str] = set()  # label files are named by stem: a.jpg and a.png must not share a.txt
    out = []
    for name in file_names:
        path, n = PurePosixPath(name), 1
        candidate = path
        while candidate.with_suffix("").as_posix() in stems:
            n += 1
            candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
        stems.add(candidate.with_suffix("").as_posix())
        out.append(candidate.as_posix())
    return out
