"""Per-image augmentation and resizing (``dataset.augmentation.*``), torchvision ``transforms.v2``.

Training, in the official RT-DETR order: ``RandomPhotometricDistort(p=distortion_prob)``,
``RandomZoomOut(fill=0)``, ``RandomIoUCrop`` applied with probability ``iou_crop_prob`` (skipped
on images without boxes, where it has nothing to keep), ``SanitizeBoundingBoxes(min_size=1)``,
``RandomHorizontalFlip``, resize, ``SanitizeBoundingBoxes(min_size=1)``. Evaluation: resize only.

Resize: to ``[h, w]`` (``train_spatial_size``, or the batch's multi-scale size, or
``eval_spatial_size``), or with ``preserve_aspect_ratio`` the long side is scaled to fit and the
bottom/right is padded with 0 up to ``[h, w]``.

Output: the image as RGB float32 in [0, 1] (no mean/std) of shape (3, h, w), and a target dict:
``labels`` int64 (N,), ``boxes`` float32 (N, 4) ``cx, cy, w, h`` normalised by the padded input
size, ``image_id`` int64, ``orig_size`` int64 ``(w, h)`` of the source image, and ``box_scale``
float32 ``(sx, sy)``: normalised box coordinates times ``box_scale`` are pixels of the source
image (equal to ``orig_size`` unless the image was padded; meaningful for evaluation, not after
the random crops of training). ``boxes_to_original`` applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

__all__ = ["AugmentationSettings", "DetectionTransform", "boxes_to_original", "resize_image"]


@dataclass(frozen=True)
class AugmentationSettings:
    """``dataset.augmentation``: sizes are ``(h, w)``."""

    multi_scales: tuple[int, ...] = ()
    train_spatial_size: tuple[int, int] = (640, 640)
    eval_spatial_size: tuple[int, int] = (640, 640)
    distortion_prob: float = 0.8
    iou_crop_prob: float = 0.8
    preserve_aspect_ratio: bool = False
    mosaic_prob: float = 0.0  # mosaic and mixup: model/data/mix_augment.py
    mixup_prob: float = 0.0
    mix_stop_fraction: float = 1.0  # read by the trainer (TrainBatchSampler.set_mixing)


def _resize_and_pad(
    sample: dict[str, Any], size: Sequence[int], preserve: bool
) -> tuple[dict[str, Any], int, int]:
    """Resize ``sample`` to ``size`` (h, w); return it and the (w, h) of the image inside the canvas."""
    height, width = int(size[0]), int(size[1])
    if not preserve:
        return v2.Resize((height, width))(sample), width, height
    in_h, in_w = sample["image"].shape[-2:]
    scale = min(height / in_h, width / in_w)
    new_h, new_w = max(1, min(height, round(in_h * scale))), max(1, min(width, round(in_w * scale)))
    sample = v2.Resize((new_h, new_w))(sample)
    if (new_h, new_w) != (height, width):
        sample = v2.Pad([0, 0, width - new_w, height - new_h], fill=0)(sample)
    return sample, new_w, new_h


def resize_image(
    image: torch.Tensor, size: Sequence[int], preserve_aspect_ratio: bool
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Resize (and pad) a (3, H, W) uint8 image; return float [0, 1] and the content (w, h)."""
    sample, content_w, content_h = _resize_and_pad(
        {"image": tv_tensors.Image(image)}, size, preserve_aspect_ratio
    )
    return F.to_dtype(sample["image"].as_subclass(torch.Tensor), torch.float32, scale=True), (
        content_w,
        content_h,
    )


class DetectionTransform:
    """Callable ``(image, boxes_xyxy, labels, image_id, size=None) -> (image, target)`` for one image.

    ``image`` is a (3, H, W) uint8 tensor; ``boxes_xyxy`` (N, 4) pixels and ``labels`` (N,) are numpy
    arrays; ``size`` overrides the output ``(h, w)`` (the loader's per-batch multi-scale size).
    Randomness comes from torch's global generator (seeded per DataLoader worker).
    """

    def __init__(self, settings: AugmentationSettings, train: bool):
        self.settings = settings
        self.train = train
        self._distort = v2.RandomPhotometricDistort(p=settings.distortion_prob)
        self._zoom_out = v2.RandomZoomOut(fill=0)
        self._iou_crop = v2.RandomIoUCrop()
        self._sanitize = v2.SanitizeBoundingBoxes(min_size=1)
        self._flip = v2.RandomHorizontalFlip()

    def _augment(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample = self._distort(sample)
        sample = self._zoom_out(sample)
        if len(sample["labels"]) and float(torch.rand(())) < self.settings.iou_crop_prob:
            sample = self._iou_crop(sample)
        sample = self._sanitize(sample)
        return self._flip(sample)

    def __call__(
        self,
        image: torch.Tensor,
        boxes_xyxy: np.ndarray,
        labels: np.ndarray,
        image_id: int,
        size: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        orig_h, orig_w = (int(v) for v in image.shape[-2:])
        sample: dict[str, Any] = {
            "image": tv_tensors.Image(image),
            "boxes": tv_tensors.BoundingBoxes(
                torch.as_tensor(boxes_xyxy, dtype=torch.float32).reshape(-1, 4),
                format=tv_tensors.BoundingBoxFormat.XYXY,
                canvas_size=(orig_h, orig_w),
            ),
            "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(-1),
        }
        if self.train:
            sample = self._augment(sample)
        default = self.settings.train_spatial_size if self.train else self.settings.eval_spatial_size
        sample, content_w, content_h = _resize_and_pad(
            sample, size or default, self.settings.preserve_aspect_ratio
        )
        if self.train:
            sample = self._sanitize(sample)
        height, width = sample["image"].shape[-2:]
        boxes = F.convert_bounding_box_format(sample["boxes"], new_format=tv_tensors.BoundingBoxFormat.CXCYWH)
        boxes = boxes.as_subclass(torch.Tensor).to(torch.float32)
        boxes = (boxes / torch.tensor([width, height, width, height], dtype=torch.float32)).clamp_(0.0, 1.0)
        target = {
            "labels": sample["labels"].as_subclass(torch.Tensor).to(torch.int64),
            "boxes": boxes,
            "image_id": torch.tensor(image_id, dtype=torch.int64),
            "orig_size": torch.tensor([orig_w, orig_h], dtype=torch.int64),
            "box_scale": torch.tensor(
                [orig_w * width / content_w, orig_h * height / content_h], dtype=torch.float32
            ),
        }
        pixels = F.to_dtype(sample["image"].as_subclass(torch.Tensor), torch.float32, scale=True)
        return pixels, target


def boxes_to_original(boxes_cxcywh: torch.Tensor, box_scale: torch.Tensor) -> torch.Tensor:
    """Normalised ``cx, cy, w, h`` boxes (..., 4) -> ``x1, y1, x2, y2`` pixels of the source image.

    ``box_scale`` is the target's ``box_scale`` (2,) (or ``orig_size`` when nothing was padded).
    """
    cx, cy, w, h = boxes_cxcywh.unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    return xyxy * box_scale.to(xyxy.dtype).repeat(2)
