"""One COCO detection data source (``{image_dir, json_file}``) -> checked image records.

Format: a COCO detection json (``images``, ``annotations``, ``categories``; boxes ``[x, y, w, h]``
in pixels) and an ``image_dir`` (folder, archive or URL, see ``archive_cache.py``) holding each
image's ``file_name``.

COCO's own layout (``coco_raw``) needs no extra key: give the instances json and either the image
folder itself or the folder above it, e.g. ``{image_dir: /data/coco, json_file:
/data/coco/annotations/instances_val2017.json}``. Images are looked up in ``image_dir``, then in
``image_dir/<split>`` where ``<split>`` comes from an ``instances_<split>.json`` name, then in
the single sub-folder of ``image_dir`` (an archive that holds ``val2017/...``); the first that
holds the json's files is used. COCO's 91-id categories need ``remap_mscoco_category: true``
(labels 0..79) or ``num_classes: 91``.

Labels are the category ids (or the remapped 0..79). A label >= ``dataset.num_classes`` is a
``DataError`` raised before any image is read. Bad records are skipped and counted, with one
``BadRecordsWarning`` per source giving the counts per reason; a source with no usable image or
no usable box is a ``DataError``. A box partly outside its image is clipped to the image's borders
and kept; the same warning counts those too and names the first one (file and json bbox).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from model.data.archive_cache import resolve_image_dir
from model.data.fetch import fetch
from model.data.mscoco import MSCOCO_CATEGORY_IDS, MSCOCO_NUM_LABELS, category_id_to_label
from model.data.records import ImageRecord
from model.errors import DataError

__all__ = ["BadRecordsWarning", "CocoSource", "coco_ground_truth", "load_coco_source"]

_INSTANCES = re.compile(r"^instances_(?P<split>.+)\.json$")
_PROBE = 20  # file names checked when choosing among candidate image folders


class BadRecordsWarning(UserWarning):
    """Some images or boxes of a data source were skipped (counts per reason in the message)."""


@dataclass
class CocoSource:
    """A loaded source: usable records, the json's categories and what was skipped."""

    json_file: str
    image_root: Path
    records: list[ImageRecord]
    categories: list[dict[str, Any]]
    skipped_images: Counter[str] = field(default_factory=Counter)
    skipped_boxes: Counter[str] = field(default_factory=Counter)
    clipped_boxes: int = 0  # kept, but clipped to the image's borders

    @property
    def num_boxes(self) -> int:
        return sum(len(r.labels) for r in self.records)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _read_json(path: Path, key: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{key}: cannot read COCO json {str(path)!r}: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(
            f"{key}: {str(path)!r} is not a COCO detection json (it needs an 'images' list, an "
            "'annotations' list and a 'categories' list)"
        )
    return data


def _image_base(root: Path, json_path: Path, file_names: list[str]) -> Path:
    """The folder under which the json's ``file_name`` values are found (see the module doc)."""
    candidates = [root]
    match = _INSTANCES.match(json_path.name)
    if match:
        candidates.append(root / match.group("split"))
    subfolders = [p for p in root.iterdir() if not p.name.startswith(".")] if root.is_dir() else []
    if len(subfolders) == 1 and subfolders[0].is_dir():
        candidates.append(subfolders[0])
    probe = file_names[:_PROBE]
    found = [sum((base / name).is_file() for name in probe) for base in candidates]
    return candidates[int(np.argmax(found))] if probe else root


def _box_problem(bbox: Any) -> str | None:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return "malformed bbox"
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
        return "malformed bbox"
    if bbox[2] <= 0 or bbox[3] <= 0:
        return "zero-size box"
    return None


def _check_num_classes(json_path: str, largest: tuple[int, int], num_classes: int, remap: bool) -> None:
    largest_label, largest_category = largest
    if largest_label < num_classes:
        return
    if remap:
        raise DataError(
            f"{json_path}: remap_mscoco_category maps COCO's categories to labels 0..{MSCOCO_NUM_LABELS - 1} "
            f"(largest here {largest_label}, category id {largest_category}), but dataset.num_classes is "
            f"{num_classes}; set dataset.num_classes: {largest_label + 1} (largest label + 1) or more"
        )
    hint = ""
    if MSCOCO_NUM_LABELS <= largest_category <= MSCOCO_CATEGORY_IDS[-1]:  # looks like COCO's sparse ids
        hint = (
            f", or, if these are COCO's own 91-id categories, set dataset.remap_mscoco_category: true "
            f"(labels 0..{MSCOCO_NUM_LABELS - 1})"
        )
    raise DataError(
        f"{json_path}: the largest category id is {largest_category}, but dataset.num_classes is "
        f"{num_classes} (category ids are used as labels and must be < num_classes); set "
        f"dataset.num_classes: {largest_category + 1} (largest category id + 1){hint}"
    )


def _image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) from the image header, or the reason the image cannot be used."""
    if not path.is_file():
        return "missing image file"
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return "unreadable image"


def _number(value: float) -> str:
    return f"{value:g}"


def _describe(counts: Counter[str]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def load_coco_source(
    image_dir: str | os.PathLike[str],
    json_file: str | os.PathLike[str],
    *,
    num_classes: int,
    remap_mscoco_category: bool = False,
    key: str = "dataset source",
) -> CocoSource:
    """Load and check one COCO source; see the module doc for the rules.

    Args:
        image_dir: folder, archive or URL of either.
        json_file: the COCO detection json (path or URL).
        num_classes: ``dataset.num_classes``; every label must be below it.
        remap_mscoco_category: map COCO's 91 ids to 80 contiguous labels.
        key: the spec key of the source (``dataset.train_data_sources[0]``), used in messages.

    Raises:
        DataError: unreadable json or folder, a label >= num_classes, or nothing usable left.
    """
    json_text = os.fspath(json_file).strip() if json_file is not None else ""
    if not json_text:
        raise DataError(f"{key}.json_file is empty; set it to a COCO detection json")
    json_path = fetch(json_text, key=f"{key}.json_file")
    data = _read_json(json_path, f"{key}.json_file")
    root = resolve_image_dir(image_dir, key=f"{key}.image_dir")
    categories = [c for c in data.get("categories") or [] if isinstance(c, dict) and _is_int(c.get("id"))]
    known = {int(c["id"]) for c in categories} if categories else None
    skipped_images: Counter[str] = Counter()
    skipped_boxes: Counter[str] = Counter()

    images: dict[int, dict[str, Any]] = {}
    for entry in data["images"]:
        if not isinstance(entry, dict) or not _is_int(entry.get("id")) or not entry.get("file_name"):
            skipped_images["malformed image entry"] += 1
        elif int(entry["id"]) in images:
            skipped_images["duplicate image id"] += 1
        else:
            images[int(entry["id"])] = entry

    boxes_of: dict[int, list[tuple[list[float], int, int]]] = {i: [] for i in images}
    largest = (-1, -1)  # (label, category id)
    for ann in data.get("annotations") or []:
        if not isinstance(ann, dict) or not _is_int(ann.get("image_id")) or ann["image_id"] not in boxes_of:
            skipped_boxes["box of an unknown image"] += 1
            continue
        if ann.get("iscrowd"):
            skipped_boxes["crowd box"] += 1
            continue
        category = ann.get("category_id")
        label = category_id_to_label(category, remap_mscoco_category) if _is_int(category) else None
        if label is None or label < 0 or (known is not None and category not in known):
            skipped_boxes["unknown category"] += 1
            continue
        problem = _box_problem(ann.get("bbox"))
        if problem:
            skipped_boxes[problem] += 1
            continue
        largest = max(largest, (label, int(category)))
        boxes_of[ann["image_id"]].append(([float(v) for v in ann["bbox"]], label, int(category)))
    if largest[0] >= 0:
        _check_num_classes(str(json_path), largest, num_classes, remap_mscoco_category)

    base = _image_base(root, json_path, [str(e["file_name"]) for e in images.values()])
    paths = {i: base / str(e["file_name"]) for i, e in images.items()}
    with ThreadPoolExecutor(max_workers=min(16, 4 * (os.cpu_count() or 1))) as pool:
        sizes = dict(zip(paths, pool.map(_image_size, paths.values())))

    records: list[ImageRecord] = []
    clipped: list[str] = []  # "file bbox [x, y, w, h] in a WxH image", one per clipped box
    for image_id, entry in images.items():
        size = sizes[image_id]
        if isinstance(size, str):
            skipped_images[size] += 1
            continue
        width, height = size
        declared = (entry.get("width"), entry.get("height"))
        if all(_is_int(v) for v in declared) and declared != (width, height):
            skipped_images["image size differs from the json"] += 1
            continue
        kept_boxes, kept_labels, kept_categories = [], [], []
        for (x, y, w, h), label, category in boxes_of[image_id]:
            x1, y1 = max(x, 0.0), max(y, 0.0)
            x2, y2 = min(x + w, float(width)), min(y + h, float(height))
            if x2 <= x1 or y2 <= y1:
                skipped_boxes["box outside the image"] += 1
                continue
            if (x1, y1, x2, y2) != (x, y, x + w, y + h):
                bbox = ", ".join(_number(v) for v in (x, y, w, h))
                clipped.append(f"{entry['file_name']} bbox [{bbox}] in a {width}x{height} image")
            kept_boxes.append((x1, y1, x2, y2))
            kept_labels.append(label)
            kept_categories.append(category)
        records.append(
            ImageRecord(
                path=str(paths[image_id]),
                image_id=image_id,
                width=width,
                height=height,
                boxes=np.asarray(kept_boxes, dtype=np.float32).reshape(-1, 4),
                labels=np.asarray(kept_labels, dtype=np.int64),
                category_ids=np.asarray(kept_categories, dtype=np.int64),
            )
        )

    source = CocoSource(
        str(json_path), base, records, categories, skipped_images, skipped_boxes, len(clipped)
    )
    where = f"{key} ({json_text}, images {os.fspath(image_dir)})"
    if not records or source.num_boxes == 0:
        what = "no usable image" if not records else "no usable box"
        reasons = _describe(skipped_images + skipped_boxes) or "the json lists no images or boxes"
        raise DataError(
            f"{where}: {what} is left after skipping bad records ({reasons}); check that image_dir "
            f"holds the json's file_name paths (looked under {str(base)!r}) and that the json has boxes"
        )
    if skipped_images or skipped_boxes or clipped:
        total_boxes = source.num_boxes + sum(skipped_boxes.values())
        parts = []
        if skipped_images:
            parts.append(
                f"{sum(skipped_images.values())} of {len(data['images'])} images ({_describe(skipped_images)})"
            )
        if skipped_boxes:
            parts.append(f"{sum(skipped_boxes.values())} of {total_boxes} boxes ({_describe(skipped_boxes)})")
        said = [f"skipped {' and '.join(parts)}"] if parts else []
        if clipped:
            said.append(
                f"clipped {len(clipped)} of {source.num_boxes} boxes partly outside their image to its "
                f"borders (e.g. {clipped[0]})"
            )
        warnings.warn(
            f"{where}: {'; '.join(said)}; kept {len(records)} images, {source.num_boxes} boxes",
            BadRecordsWarning,
            stacklevel=2,
        )
    return source


def coco_ground_truth(records: Any, categories: list[dict[str, Any]]) -> dict[str, Any]:
    """A COCO json dict of the usable records (category ids as in the source json) for evaluation.

    Crowd boxes and skipped records are not in it, so pycocotools scores exactly what the model saw.
    """
    images, annotations = [], []
    for index in range(len(records)):
        record = records[index]
        images.append(
            {
                "id": record.image_id,
                "file_name": Path(record.path).name,
                "width": record.width,
                "height": record.height,
            }
        )
        for (x1, y1, x2, y2), category in zip(record.boxes.tolist(), record.category_ids.tolist()):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": record.image_id,
                    "category_id": int(category),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": categories}
