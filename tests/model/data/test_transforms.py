"""Per-image transforms: output format, boxes that stay on their objects, aspect-preserving resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.data.transforms import AugmentationSettings, DetectionTransform, boxes_to_original

WIDTH, HEIGHT = 100, 60
OBJECT = (10, 20, 30, 40)  # x1, y1, x2, y2 of a white rectangle on black, in the left half


def _scene() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    image = torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8)
    x1, y1, x2, y2 = OBJECT
    image[:, y1:y2, x1:x2] = 255
    return image, np.asarray([OBJECT], dtype=np.float32), np.asarray([2], dtype=np.int64)


def _settings(**changes: object) -> AugmentationSettings:
    base = {"train_spatial_size": (64, 64), "eval_spatial_size": (48, 80)}
    return AugmentationSettings(**{**base, **changes})


def test_eval_output_format() -> None:
    image, boxes, labels = _scene()
    pixels, target = DetectionTransform(_settings(), train=False)(image, boxes, labels, image_id=7)
    assert pixels.dtype == torch.float32 and pixels.shape == (3, 48, 80)
    assert 0.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [2]
    assert target["boxes"].dtype == torch.float32
    expected = [20 / WIDTH, 30 / HEIGHT, 20 / WIDTH, 20 / HEIGHT]  # cx, cy, w, h normalised
    assert target["boxes"].tolist() == [pytest.approx(expected, abs=1e-5)]
    assert int(target["image_id"]) == 7 and target["orig_size"].tolist() == [WIDTH, HEIGHT]
    back = boxes_to_original(target["boxes"], target["box_scale"])
    assert back.tolist() == [pytest.approx(list(OBJECT), abs=1e-3)]


def test_train_output_format_and_boxes_stay_on_the_object() -> None:
    torch.manual_seed(0)
    transform = DetectionTransform(_settings(distortion_prob=0.0, iou_crop_prob=1.0), train=True)
    image, boxes, labels = _scene()
    sides = set()
    for _ in range(30):
        pixels, target = transform(image, boxes, labels, image_id=1)
        assert pixels.shape == (3, 64, 64) and pixels.dtype == torch.float32
        assert target["boxes"].shape == (1, 4) and target["labels"].tolist() == [2]
        assert bool(((target["boxes"] >= 0) & (target["boxes"] <= 1)).all())
        cx, cy, w, h = (target["boxes"][0] * 64).tolist()
        x1, y1, x2, y2 = round(cx - w / 2), round(cy - h / 2), round(cx + w / 2), round(cy + h / 2)
        inside = pixels[:, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]
        assert float(inside.mean()) > 0.9  # the box sits on the white object...
        outside = pixels.clone()
        outside[:, max(0, y1 - 2) : y2 + 2, max(0, x1 - 2) : x2 + 2] = 0
        assert float(outside.max()) < 0.1  # ...and covers all of it
        sides.add(cx < 32)
    assert sides == {True, False}  # flips happened, and the box followed the object


def test_train_image_without_boxes() -> None:
    transform = DetectionTransform(_settings(iou_crop_prob=1.0), train=True)
    image = torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8)
    pixels, target = transform(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), image_id=3)
    assert pixels.shape == (3, 64, 64)
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


def test_multi_scale_size_overrides_the_train_size() -> None:
    image, boxes, labels = _scene()
    pixels, _ = DetectionTransform(_settings(), train=True)(image, boxes, labels, 1, size=(96, 96))
    assert pixels.shape == (3, 96, 96)


def test_preserve_aspect_ratio_resizes_the_long_side_and_pads() -> None:
    image, boxes, labels = _scene()  # 100 x 60
    transform = DetectionTransform(
        _settings(eval_spatial_size=(64, 64), preserve_aspect_ratio=True), train=False
    )
    pixels, target = transform(image, boxes, labels, image_id=1)
    assert pixels.shape == (3, 64, 64)
    content_h = round(HEIGHT * 64 / WIDTH)  # 38 rows of image, the rest padding
    assert float(pixels[:, content_h:, :].abs().max()) == 0.0
    cx, _, w, _ = target["boxes"][0].tolist()
    assert cx == pytest.approx(20 * 0.64 / 64, abs=1e-3) and w == pytest.approx(20 * 0.64 / 64, abs=1e-3)
    back = boxes_to_original(target["boxes"], target["box_scale"])
    assert back.tolist() == [pytest.approx(list(OBJECT), abs=0.5)]
