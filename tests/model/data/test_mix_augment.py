"""Mosaic and mixup (``mix_augment.py``) through the real loader: boxes stay on their objects, mixing
off is the plain pipeline, bad values name their key, tiny sets and images without boxes work.

The images are solid rectangles on black, one colour (and one label) per object, so the pixels of
an output image say where every object is: each output box must be filled by its object's colour,
the colour's extent must be the box, and no colour may be left outside every box.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.data import build_dataloader, build_dataset
from model.data.samplers import SampledItem
from model.errors import DataError

SIZE = 96  # output side
# (width, height) of each image and its objects' (x1, y1, x2, y2) boxes; every object its own label
IMAGES = [
    ((80, 64), [(6, 8, 30, 30), (44, 30, 74, 58)]),
    ((64, 96), [(10, 10, 40, 34), (20, 56, 54, 88)]),
    ((100, 70), [(60, 6, 94, 40)]),
    ((72, 72), [(4, 40, 28, 68), (36, 4, 68, 32)]),
    ((90, 60), [(8, 20, 40, 52), (54, 10, 84, 30)]),
    ((60, 80), [(14, 24, 48, 60)]),
]
NUM_OBJECTS = sum(len(boxes) for _, boxes in IMAGES)
COLOURS = [  # one hue per object, full saturation and value: a chromaticity per label
    np.asarray(colorsys.hsv_to_rgb(k / NUM_OBJECTS, 1.0, 1.0), dtype=np.float32) for k in range(NUM_OBJECTS)
]
WINDOW = 4  # pixels around a box searched for its colour
BRIGHT = 0.2  # a pixel whose brightest channel is above this shows an object (even blended by mixup)


def _write_set(root: Path, images: list, empty: tuple[int, ...] = ()) -> dict:
    """PNG images and a COCO json; ``empty`` lists images written without their objects."""
    folder = root / "images"
    folder.mkdir(parents=True)
    entries, annotations, label = [], [], 0
    for number, ((width, height), boxes) in enumerate(images, start=1):
        pixels = np.zeros((height, width, 3), dtype=np.uint8)
        for x1, y1, x2, y2 in boxes:
            if number - 1 not in empty:
                pixels[y1:y2, x1:x2] = (COLOURS[label] * 255).round().astype(np.uint8)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": number,
                        "category_id": label,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
            label += 1
        Image.fromarray(pixels).save(folder / f"{number}.png")
        entries.append({"id": number, "file_name": f"{number}.png", "width": width, "height": height})
    categories = [{"id": k, "name": f"object{k}"} for k in range(NUM_OBJECTS)]
    json_file = root / "annotations.json"
    json_file.write_text(
        json.dumps({"images": entries, "annotations": annotations, "categories": categories})
    )
    source = {"image_dir": str(folder), "json_file": str(json_file)}
    return {"train_data_sources": [source], "val_data_sources": source, "test_data_sources": source}


def _spec(sources: dict, batch_size: int = 3, workers: int = 0, **augmentation: object) -> dict:
    aug = {
        "multi_scales": [SIZE],
        "train_spatial_size": [SIZE, SIZE],
        "eval_spatial_size": [SIZE, SIZE],
        "distortion_prob": 0.0,  # keeps the colours
        "iou_crop_prob": 0.0,  # torchvision's IoU crop leaves unboxed object fragments by design
        **augmentation,
    }
    return {
        "dataset": {
            **sources,
            "num_classes": NUM_OBJECTS,
            "batch_size": batch_size,
            "workers": workers,
            "augmentation": aug,
        }
    }


@pytest.fixture
def shapes(tmp_path: Path) -> dict:
    return _write_set(tmp_path / "shapes", IMAGES)


def _samples(spec: dict, epochs: int, seed: int = 0) -> list[tuple[torch.Tensor, dict]]:
    torch.manual_seed(seed)
    loader = build_dataloader(spec, "train", seed=seed)
    out = []
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        for images, targets in loader:
            out.extend(zip(images, targets, strict=True))
    return out


def _pixel_boxes(target: dict) -> np.ndarray:
    cx, cy, w, h = (target["boxes"].numpy() * SIZE).T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _colour_mask(image: torch.Tensor, label: int) -> np.ndarray:
    """Pixels bright enough whose chromaticity (colour / brightest channel) is the label's."""
    pixels = image.permute(1, 2, 0).numpy()
    bright = pixels.max(axis=2)
    chroma = pixels / np.maximum(bright, 1e-6)[..., None]
    return (bright > BRIGHT) & (np.abs(chroma - COLOURS[label]).max(axis=2) < 0.15)


def _overlaps(box: np.ndarray, others: np.ndarray, margin: float) -> bool:
    return bool(
        (
            (others[:, 0] < box[2] + margin)
            & (others[:, 2] > box[0] - margin)
            & (others[:, 1] < box[3] + margin)
            & (others[:, 3] > box[1] - margin)
        ).any()
    )


def _check_boxes(samples: list, mixed: bool) -> int:
    """Every box sits on its object's pixels; nothing bright is left outside all boxes. Returns the
    number of boxes checked tightly: boxes near another box (of the same colour, or any box with
    mixup, whose blend changes colours) are skipped."""
    checked = 0
    for image, target in samples:
        boxes, labels = _pixel_boxes(target), target["labels"].tolist()
        for k, (box, label) in enumerate(zip(boxes, labels, strict=True)):
            others = np.delete(boxes, k, axis=0)
            if not mixed:  # only the same colour disturbs a mosaic's check (an image drawn twice)
                others = others[np.delete(np.asarray(labels), k) == label]
            if _overlaps(box, others, margin=WINDOW + 2):
                continue
            x1, y1, x2, y2 = box
            if x2 - x1 < 6 or y2 - y1 < 6:
                continue  # too small to say much at 1-2 px tolerance
            top, left = max(0, int(y1) - WINDOW), max(0, int(x1) - WINDOW)
            window = _colour_mask(image, label)[
                top : int(np.ceil(y2)) + WINDOW, left : int(np.ceil(x2)) + WINDOW
            ]
            rows, cols = np.nonzero(window)
            assert len(rows), f"box {box.round(1)} of label {label} has no pixel of its colour"
            extent = np.asarray(
                [cols.min() + left, rows.min() + top, cols.max() + 1 + left, rows.max() + 1 + top]
            )
            assert np.abs(extent - box).max() <= 2.0, f"label {label}: box {box.round(1)}, pixels at {extent}"
            inner = window[int(y1) + 2 - top : int(y2) - 1 - top, int(x1) + 2 - left : int(x2) - 1 - left]
            assert inner.mean() > 0.9, (
                f"label {label}: box {box.round(1)} is only {inner.mean():.0%} its colour"
            )
            checked += 1
        covered = np.zeros((SIZE, SIZE), dtype=bool)
        for x1, y1, x2, y2 in boxes:
            covered[
                max(0, int(y1) - 2) : int(np.ceil(y2)) + 2, max(0, int(x1) - 2) : int(np.ceil(x2)) + 2
            ] = True
        stray = (image.max(dim=0).values.numpy() > BRIGHT) & ~covered
        assert stray.sum() <= 4, f"{int(stray.sum())} object pixels outside every box"
    return checked


def _source_images(target: dict) -> set[int]:
    """Which source images the target's labels come from."""
    first_label = np.cumsum([0] + [len(b) for _, b in IMAGES])
    return {int(np.searchsorted(first_label, label, side="right")) for label in target["labels"].tolist()}


def test_mosaic_boxes_stay_on_their_objects(shapes: dict) -> None:
    samples = _samples(_spec(shapes, mosaic_prob=1.0), epochs=4)
    assert all(t["orig_size"].tolist() == [SIZE, SIZE] for _, t in samples)  # all mosaics
    assert _check_boxes(samples, mixed=False) >= 15
    assert sum(len(_source_images(t)) >= 2 for _, t in samples) >= len(samples) // 3  # images together
    # with the IoU crop on (it clips boxes to the crop), boxes still match their objects' pixels
    with_crop = _samples(_spec(shapes, mosaic_prob=1.0, iou_crop_prob=1.0), epochs=2)
    for image, target in with_crop:
        for box, label in zip(_pixel_boxes(target), target["labels"].tolist(), strict=True):
            if box[2] - box[0] >= 6 and box[3] - box[1] >= 6:
                inner = _colour_mask(image, label)[
                    int(box[1]) + 2 : int(box[3]) - 1, int(box[0]) + 2 : int(box[2]) - 1
                ]
                assert inner.mean() > 0.9


def test_mixup_keeps_the_boxes_of_both_samples(shapes: dict) -> None:
    samples = _samples(_spec(shapes, mixup_prob=1.0), epochs=4)
    assert _check_boxes(samples, mixed=True) >= 15
    assert sum(len(_source_images(t)) == 2 for _, t in samples) >= len(samples) // 2
    for image, target in samples:  # blended: a full-brightness pixel lies where two boxes overlap
        rows, cols = np.nonzero(image.max(dim=0).values.numpy() > 0.8)
        boxes = _pixel_boxes(target)
        for y, x in zip(rows + 0.5, cols + 0.5, strict=True):
            inside = (
                (boxes[:, 0] - 1 <= x)
                & (x <= boxes[:, 2] + 1)
                & (boxes[:, 1] - 1 <= y)
                & (y <= boxes[:, 3] + 1)
            )
            assert inside.sum() >= 2
    both = _samples(_spec(shapes, mosaic_prob=1.0, mixup_prob=1.0), epochs=2)
    assert all(t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64 for _, t in both)
    assert max(len(_source_images(t)) for _, t in both) >= 4


def _plain_reference(spec: dict, epochs: int, seed: int = 0) -> list[tuple[torch.Tensor, dict]]:
    """The samples as the dataset made them before mosaic and mixup existed."""
    from model.data.dataset import read_rgb

    torch.manual_seed(seed)
    loader = build_dataloader(spec, "train", seed=seed)
    data, out = loader.dataset, []
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader.batch_sampler:
            for item in batch:
                index, size = item.index, item.size
                record = data.table[index]
                out.append(
                    data.transform(read_rgb(record.path), record.boxes, record.labels, record.image_id, size)
                )
    return out


def _assert_same(left: list, right: list) -> None:
    assert len(left) == len(right)
    for (image_a, target_a), (image_b, target_b) in zip(left, right, strict=True):
        assert torch.equal(image_a, image_b)
        assert target_a.keys() == target_b.keys()
        assert all(torch.equal(target_a[k], target_b[k]) for k in target_a)


def test_mixing_off_or_zero_probabilities_is_the_plain_pipeline(shapes: dict) -> None:
    reference = _plain_reference(_spec(shapes), epochs=2)
    _assert_same(_samples(_spec(shapes), epochs=2), reference)  # keys absent: defaults 0
    _assert_same(_samples(_spec(shapes, mosaic_prob=0.0, mixup_prob=0.0), epochs=2), reference)
    torch.manual_seed(0)
    loader = build_dataloader(_spec(shapes, mosaic_prob=1.0, mixup_prob=1.0), "train")
    loader.batch_sampler.set_mixing(False)
    off = []
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)
        assert all(
            isinstance(i, tuple) and not isinstance(i, SampledItem) for b in loader.batch_sampler for i in b
        )
        loader.batch_sampler.set_epoch(epoch)
        off.extend(s for images, targets in loader for s in zip(images, targets, strict=True))
    _assert_same(off, reference)


def test_the_flag_reaches_persistent_workers(shapes: dict) -> None:
    loader = build_dataloader(_spec(shapes, workers=1, mosaic_prob=1.0), "train")
    sizes = {number: list(size) for number, (size, _) in enumerate(IMAGES, start=1)}
    for epoch, mixing in enumerate([True, False, True]):
        loader.batch_sampler.set_epoch(epoch)
        loader.batch_sampler.set_mixing(mixing)
        for _, targets in loader:
            for target in targets:
                plain = sizes[int(target["image_id"])]
                assert target["orig_size"].tolist() == ([SIZE, SIZE] if mixing else plain)


@pytest.mark.parametrize(
    ("key", "value"),
    [("mosaic_prob", 1.5), ("mixup_prob", -0.1), ("mix_stop_fraction", 0), ("mix_stop_fraction", 1.2)],
)
def test_bad_values_name_their_key(shapes: dict, key: str, value: float) -> None:
    with pytest.raises(DataError) as caught:
        build_dataset(_spec(shapes, **{key: value}), "train")
    message = str(caught.value)
    assert f"dataset.augmentation.{key}" in message and repr(value) in message
    assert ("(0, 1]" if key == "mix_stop_fraction" else "between 0 and 1") in message


def test_two_images_one_without_boxes(tmp_path: Path) -> None:
    sources = _write_set(tmp_path / "tiny", IMAGES[:2], empty=(1,))
    samples = _samples(_spec(sources, batch_size=2, mosaic_prob=1.0, mixup_prob=1.0), epochs=6)
    assert len(samples) == 12
    for image, target in samples:
        assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1:] == (4,)
        assert target["labels"].dtype == torch.int64 and len(target["labels"]) == len(target["boxes"])
        assert bool(((target["boxes"] >= 0) & (target["boxes"] <= 1)).all())
        assert set(target["labels"].tolist()) <= {0, 1}  # image 2's objects were never annotated
    assert _check_boxes(samples, mixed=True) >= 1
    data = build_dataset(_spec(sources, mosaic_prob=1.0), "train")
    torch.manual_seed(1)
    image, target = data[SampledItem(1, None, True)]  # a mosaic of the box-less image and its neighbour
    assert image.shape == (3, SIZE, SIZE) and target["boxes"].shape[1:] == (4,)
