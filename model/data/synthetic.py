"""The embedded default dataset: synthetic coloured shapes in COCO detection format.

Design. Every image is a dark, noisy background (a tinted flat colour or a two-tint gradient)
holding 0 to 4 objects, mostly 1 to 3; about one image in sixteen is empty. An object is a solid,
bright shape (circle, square, triangle, then diamond, cross, star, hexagon, ring when more classes
are asked for) of any hue, 15% to 45% of the image side (never under 12 px). Placements whose
box overlaps an earlier box too much (IoU > 0.3, or more than half of the smaller box covered)
are rejected, so every object stays clearly visible. ``dense=True`` is the harder layout: 4 to 12
objects per image, 7% to 20% of the side (never under 8 px), the same overlap rules. The class is the shape, never the colour or
the size. Boxes are the tight boxes of the drawn shapes (alpha >= 0.5), in pixels.

What a model must learn: to find bright blobs on a dark background (easy: the brightness gap is
large and the edges crisp), to read their outline (a few, very different shapes, drawn upright
with at most 10 degrees of jitter) and to regress a tight box. There is no texture, clutter,
lighting or truncation, so a small RT-DETR (ResNet-18, hidden 64, 128 px) reaches a high
val_mAP50 in minutes on a CPU, while colours, sizes, counts, overlaps and backgrounds vary
enough that it cannot memorise a template.

Layout written under ``out``::

    label_map.txt                  one class name per line, in category-id order (TAO classmap)
    {train,val,test}/images.tar.gz  000000.jpg, 000001.jpg, ... at the archive root
    {train,val,test}/annotations.json

Category ids are 1..K (id 0 is unused, so TAO's ``dataset.num_classes`` is K + 1). The output is
byte-identical for the same arguments: each image has its own random generator seeded by
``(seed, split, index)``, JPEG encoding is deterministic, and archive metadata is fixed. Every
file is written under a temporary name and renamed, so a finished-looking file is never partial.
"""

from __future__ import annotations

import gzip
import io
import json
import numbers
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model.data.shapes import CLASS_NAMES, background, object_colour, shape_mask
from model.errors import DataError

__all__ = ["CLASS_NAMES", "generate_dataset"]

SPLITS: tuple[str, ...] = ("train", "val", "test")
COUNT_WEIGHTS: tuple[float, ...] = (0.06, 0.34, 0.34, 0.18, 0.08)  # P(n objects), n = 0..4
MIN_SIDE_PX = 12
MIN_SIDE_FRACTION = 0.15
MAX_SIDE_FRACTION = 0.45
MAX_IOU = 0.3
MAX_COVERED = 0.5  # largest share of the smaller box that another box may cover
PLACEMENT_TRIES = 40
DENSE_COUNTS = (4, 12)  # dense=True: objects per image, uniform in this range
DENSE_SIDE_FRACTIONS = (0.07, 0.20)
DENSE_MIN_SIDE_PX = 8
MIN_COLOUR_DISTANCE = 90.0  # RGB distance between overlapping objects, so they never merge
JPEG_QUALITY = 95
ARCHIVE_MTIME = 1577836800  # 2020-01-01T00:00:00Z, fixed so archives are reproducible


def _check_arguments(train: int, val: int, test: int, size: int, classes: int, seed: int) -> None:
    def is_int(value: object) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    problems = []
    for name, value in (("train", train), ("val", val), ("test", test)):
        if not is_int(value) or value < 1:
            problems.append(f"--{name}={value!r}: the number of {name} images must be an integer >= 1")
    if not is_int(size) or size < 32 or size % 32:
        problems.append(
            f"--size={size!r}: the image side must be an integer multiple of 32, at least 32 (e.g. 128)"
        )
    if not is_int(classes) or not 1 <= classes <= len(CLASS_NAMES):
        problems.append(
            f"--classes={classes!r}: must be an integer from 1 to {len(CLASS_NAMES)} "
            f"(the shapes {', '.join(CLASS_NAMES)})"
        )
    if not is_int(seed) or seed < 0:
        problems.append(f"--seed={seed!r}: must be an integer >= 0")
    if problems:
        raise DataError("synthetic dataset: " + "; ".join(problems))


def _overlaps_too_much(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> bool:
    x, y, w, h = box
    for ox, oy, ow, oh in others:
        iw = min(x + w, ox + ow) - max(x, ox)
        ih = min(y + h, oy + oh) - max(y, oy)
        if iw <= 0 or ih <= 0:
            continue
        inter = iw * ih
        if inter / (w * h + ow * oh - inter) > MAX_IOU or inter / min(w * h, ow * oh) > MAX_COVERED:
            return True
    return False


def _intersects(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    ox, oy, ow, oh = other
    return min(x + w, ox + ow) > max(x, ox) and min(y + h, oy + oh) > max(y, oy)


def render_image(
    rng: np.random.Generator, size: int, classes: int, dense: bool = False
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Draw one image; return it (``uint8``, HxWx3) and its objects (``category_id``, ``bbox``, ``area``)."""
    image = background(size, rng)
    if dense:
        count = int(rng.integers(DENSE_COUNTS[0], DENSE_COUNTS[1] + 1))
        min_side = max(DENSE_MIN_SIDE_PX, round(DENSE_SIDE_FRACTIONS[0] * size))
        max_side = max(min_side, round(DENSE_SIDE_FRACTIONS[1] * size))
    else:
        count = int(rng.choice(len(COUNT_WEIGHTS), p=np.asarray(COUNT_WEIGHTS) / sum(COUNT_WEIGHTS)))
        min_side = max(MIN_SIDE_PX, round(MIN_SIDE_FRACTION * size))
        max_side = max(min_side, round(MAX_SIDE_FRACTION * size))
    objects: list[dict[str, Any]] = []
    boxes: list[tuple[int, int, int, int]] = []
    colours: list[np.ndarray] = []
    for _ in range(count):
        label = int(rng.integers(classes))
        side = int(rng.integers(min_side, max_side + 1))
        alpha = shape_mask(CLASS_NAMES[label], side, rng)
        rows = np.flatnonzero((alpha >= 0.5).any(axis=1))
        cols = np.flatnonzero((alpha >= 0.5).any(axis=0))
        offset_x, offset_y = int(cols[0]), int(rows[0])
        width, height = int(cols[-1]) - offset_x + 1, int(rows[-1]) - offset_y + 1
        for _ in range(PLACEMENT_TRIES):
            x, y = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            box = (x + offset_x, y + offset_y, width, height)
            if not _overlaps_too_much(box, boxes):
                break
        else:
            continue  # no room left for this object: the image simply holds fewer
        neighbours = [c for b, c in zip(boxes, colours) if _intersects(box, b)]
        colour = object_colour(rng)
        for _ in range(10):
            if all(float(np.linalg.norm(colour - c)) >= MIN_COLOUR_DISTANCE for c in neighbours):
                break
            colour = object_colour(rng)
        region = image[y : y + side, x : x + side]
        region += alpha[..., None] * (colour[None, None, :] - region)
        boxes.append(box)
        colours.append(colour)
        objects.append({"category_id": label + 1, "bbox": list(box), "area": round(float(alpha.sum()), 2)})
    image += rng.normal(0.0, float(rng.uniform(1.0, 4.0)), image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), objects


def _encode_jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_archive(path: Path, members: Iterator[tuple[str, bytes]]) -> None:
    """Write a reproducible ``.tar.gz`` (fixed mtimes, owners, modes; gzip mtime 0) atomically."""
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as raw:
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as compressed,
                tarfile.open(fileobj=compressed, mode="w", format=tarfile.USTAR_FORMAT) as tar,
            ):
                for name, data in members:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    info.mtime = ARCHIVE_MTIME
                    info.mode = 0o644
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tar.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_split(
    folder: Path, split_index: int, count: int, size: int, classes: int, seed: int, dense: bool
) -> dict[str, Any]:
    """Render one split into ``folder``; return its summary."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []

    def members() -> Iterator[tuple[str, bytes]]:
        for index in range(count):
            rng = np.random.default_rng([seed, split_index, index])
            pixels, objects = render_image(rng, size, classes, dense)
            image_id = index + 1
            file_name = f"{index:06d}.jpg"
            images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
            for obj in objects:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, **obj, "iscrowd": 0})
            yield file_name, _encode_jpeg(pixels)

    archive = folder / "images.tar.gz"
    json_file = folder / "annotations.json"
    json_file.unlink(missing_ok=True)  # never pair a new archive with a stale json from an earlier run
    _write_archive(archive, members())
    coco = {
        "info": {"description": "rtdetr synthetic shapes", "version": "1.0", "size": size, "seed": seed}
        | ({"dense": True} if dense else {}),
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": k + 1, "name": name, "supercategory": "shape"}
            for k, name in enumerate(CLASS_NAMES[:classes])
        ],
    }
    _write_atomic(json_file, (json.dumps(coco, indent=1) + "\n").encode("utf-8"))
    empty = count - len({a["image_id"] for a in annotations})
    return {
        "image_dir": str(archive),
        "json_file": str(json_file),
        "images": count,
        "boxes": len(annotations),
        "empty_images": empty,
    }


def generate_dataset(
    out: str | Path,
    *,
    train: int = 400,
    val: int = 100,
    test: int = 100,
    size: int = 128,
    classes: int = 3,
    seed: int = 0,
    dense: bool = False,
) -> dict[str, Any]:
    """Write the synthetic shapes dataset under ``out`` and return a summary.

    Args:
        out: output folder (created if missing; our files in it are replaced).
        train, val, test: number of images per split, each >= 1.
        size: image side in pixels, a multiple of 32, at least 32.
        classes: number of shape classes K, 1..len(CLASS_NAMES); category ids are 1..K.
        seed: any integer >= 0; the same arguments give byte-identical files.
        dense: the harder layout (module doc): more and smaller objects per image.

    Returns:
        ``{"out", "label_map", "class_names", "num_classes", "size", "seed", "splits"}`` where
        ``num_classes`` is TAO's ``dataset.num_classes`` (K + 1, id 0 unused) and ``splits`` maps
        each split name to ``{"image_dir", "json_file", "images", "boxes", "empty_images"}``.

    Raises:
        DataError: an argument is out of range, or ``out`` cannot be written.
    """
    _check_arguments(train, val, test, size, classes, seed)
    root = Path(out)
    counts = {"train": train, "val": val, "test": test}
    splits: dict[str, Any] = {}
    try:
        for split_index, split in enumerate(SPLITS):
            folder = root / split
            folder.mkdir(parents=True, exist_ok=True)
            splits[split] = _write_split(folder, split_index, counts[split], size, classes, seed, dense)
        label_map = root / "label_map.txt"
        _write_atomic(label_map, "".join(f"{name}\n" for name in CLASS_NAMES[:classes]).encode("utf-8"))
    except OSError as error:
        raise DataError(
            f"synthetic dataset: cannot write under --out={str(root)!r}: {error}; "
            "choose a writable folder (not an existing file)"
        ) from error
    return {
        "out": str(root),
        "label_map": str(label_map),
        "class_names": list(CLASS_NAMES[:classes]),
        "num_classes": classes + 1,
        "size": size,
        "seed": seed,
        "splits": splits,
    }
