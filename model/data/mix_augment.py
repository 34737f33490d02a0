"""Mosaic and mixup of training samples (``dataset.augmentation.mosaic_prob`` / ``mixup_prob``).

More objects per training image means more one-to-one matched queries per image (DEIM's "Dense
O2O"). Both run only on training items the batch sampler flags as mixing (``samplers.py``); with
the flag off, or both probabilities 0, a sample is exactly the plain pipeline's and no random
number is drawn here. Randomness comes from torch's global generator (seeded per worker).

Mosaic (probability ``mosaic_prob``): the sampled image and 3 drawn with replacement (so a set of
fewer than 4 images works) are laid out YOLO-style on a virtual canvas of twice the output size
``(h, w)``, around a centre uniform in its middle half, top-left / top-right / bottom-left /
bottom-right; the output-size window in the canvas's middle is kept (only that window is ever
allocated). Each image is first fitted into ``(h, w)`` (aspect kept) and then scaled by a factor
uniform in ``MOSAIC_SCALE``, so objects keep on average the size the plain pipeline gives them.
Boxes move and scale with their image and are clipped to its visible part; a box is dropped when
less than ``MIN_VISIBLE`` of its area survives or a side is under ``MIN_SIDE`` pixels, and what is
visible of a dropped box (outside every kept box) is blacked out, so no unlabelled fragment of an
object is left to be learnt as background. The mosaic then goes through the usual training
transform (photometric distortion, zoom-out, IoU crop, flip, resize, sanitize).

Mixup (probability ``mixup_prob``, after the mosaic decision): the sample, plain or mosaic, is
blended with a second, plain, fully transformed training sample of the same output size,
``lam * a + (1 - lam) * b`` with ``lam`` uniform in ``MIXUP_LAMBDA``; the boxes and labels of both
are kept. The target keeps ``transforms.py``'s format; ``image_id``, ``orig_size`` and
``box_scale`` are the first sample's (for a mosaic, those of its canvas).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from model.data.transforms import AugmentationSettings, DetectionTransform

__all__ = [
    "MIN_SIDE",
    "MIN_VISIBLE",
    "MIXUP_LAMBDA",
    "MOSAIC_SCALE",
    "Decoded",
    "MixAugmentation",
    "mixup",
    "mosaic",
]

MOSAIC_SCALE = (0.5, 1.5)  # of the image fitted into the output size
MIXUP_LAMBDA = (0.45, 0.55)  # weight of the first sample
MIN_VISIBLE = 0.4  # share of a box's area that must stay inside the mosaic
MIN_SIDE = 2.0  # pixels, each side of a kept mosaic box

Target = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Decoded:
    """One decoded training image: (3, H, W) uint8, ``xyxy`` pixel boxes (N, 4), labels (N,)."""

    image: torch.Tensor
    boxes: np.ndarray
    labels: np.ndarray
    image_id: int


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _pixel_rect(box: np.ndarray, height: int, width: int) -> tuple[slice, slice]:
    """The rows and columns a float ``xyxy`` box touches (rounded outwards)."""
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    return slice(y1, y2), slice(x1, x2)


def _erase_dropped(canvas: torch.Tensor, dropped: np.ndarray, kept: np.ndarray) -> None:
    """Black out the visible parts of ``dropped`` boxes that lie outside every ``kept`` box."""
    height, width = canvas.shape[-2:]
    erase = torch.zeros((height, width), dtype=torch.bool)
    for box in dropped:
        erase[_pixel_rect(box, height, width)] = True
    for box in kept:
        erase[_pixel_rect(box, height, width)] = False
    canvas[:, erase] = 0


def mosaic(tiles: Sequence[Decoded], size: Sequence[int]) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Four images -> one ``size`` (h, w) uint8 mosaic with its ``xyxy`` boxes and labels (module doc)."""
    height, width = int(size[0]), int(size[1])
    canvas = torch.zeros((3, height, width), dtype=torch.uint8)
    # the centre, in the coordinates of the kept window (the canvas's middle half)
    cx, cy = int(torch.randint(0, width + 1, ())), int(torch.randint(0, height + 1, ()))
    kept_boxes, kept_labels, dropped = [], [], []
    for corner, tile in enumerate(tiles):
        in_h, in_w = (int(v) for v in tile.image.shape[-2:])
        scale = _uniform(*MOSAIC_SCALE) * min(height / in_h, width / in_w)
        tile_h, tile_w = max(1, round(in_h * scale)), max(1, round(in_w * scale))
        x0 = cx - tile_w if corner in (0, 2) else cx
        y0 = cy - tile_h if corner in (0, 1) else cy
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + tile_w, width), min(y0 + tile_h, height)
        if xa >= xb or ya >= yb:
            continue  # the tile falls outside the window: nothing of it is visible
        resized = F.resize(tile.image, [tile_h, tile_w], antialias=True)
        canvas[:, ya:yb, xa:xb] = resized[:, ya - y0 : yb - y0, xa - x0 : xb - x0]
        boxes = np.asarray(tile.boxes, dtype=np.float32).reshape(-1, 4)
        if not len(boxes):
            continue
        boxes = boxes * np.float32([tile_w / in_w, tile_h / in_h] * 2) + np.float32([x0, y0] * 2)
        clipped = np.empty_like(boxes)
        clipped[:, 0::2] = boxes[:, 0::2].clip(xa, xb)
        clipped[:, 1::2] = boxes[:, 1::2].clip(ya, yb)
        side_w, side_h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
        keep = (side_w >= MIN_SIDE) & (side_h >= MIN_SIDE) & (side_w * side_h >= MIN_VISIBLE * area)
        kept_boxes.append(clipped[keep])
        kept_labels.append(np.asarray(tile.labels, dtype=np.int64).reshape(-1)[keep])
        dropped.append(clipped[~keep & (side_w > 0) & (side_h > 0)])
    boxes = np.concatenate(kept_boxes) if kept_boxes else np.zeros((0, 4), np.float32)
    labels = np.concatenate(kept_labels) if kept_labels else np.zeros(0, np.int64)
    if dropped and sum(len(d) for d in dropped):
        _erase_dropped(canvas, np.concatenate(dropped), boxes)
    return canvas, boxes, labels


def mixup(
    first: tuple[torch.Tensor, Target], second: tuple[torch.Tensor, Target]
) -> tuple[torch.Tensor, Target]:
    """Blend two transformed samples of one size; the boxes and labels of both are kept."""
    (pixels_a, target_a), (pixels_b, target_b) = first, second
    lam = _uniform(*MIXUP_LAMBDA)
    pixels = pixels_a.mul(lam).add_(pixels_b, alpha=1.0 - lam)
    target = dict(target_a)
    target["labels"] = torch.cat([target_a["labels"], target_b["labels"]])
    target["boxes"] = torch.cat([target_a["boxes"], target_b["boxes"]])
    return pixels, target


class MixAugmentation:
    """Builds one mixing training sample: mosaic and / or mixup around the plain transform."""

    def __init__(self, settings: AugmentationSettings):
        self.mosaic_prob = settings.mosaic_prob
        self.mixup_prob = settings.mixup_prob

    @property
    def active(self) -> bool:
        return self.mosaic_prob > 0.0 or self.mixup_prob > 0.0

    def __call__(
        self,
        index: int,
        size: Sequence[int] | None,
        count: int,
        decode: Callable[[int], Decoded],
        transform: DetectionTransform,
    ) -> tuple[torch.Tensor, Target]:
        """The sample of ``index`` at ``size`` (default ``train_spatial_size``) out of ``count`` images;
        ``decode`` reads one image, which happens only for the images a sample uses."""
        out_size = tuple(int(v) for v in (size or transform.settings.train_spatial_size))
        if self.mosaic_prob > 0.0 and float(torch.rand(())) < self.mosaic_prob:
            others = [int(i) for i in torch.randint(0, count, (3,))]
            tiles = [decode(index)] + [decode(i) for i in others]
            image, boxes, labels = mosaic(tiles, out_size)
            sample = transform(image, boxes, labels, tiles[0].image_id, out_size)
        else:
            plain = decode(index)
            sample = transform(plain.image, plain.boxes, plain.labels, plain.image_id, out_size)
        if self.mixup_prob > 0.0 and float(torch.rand(())) < self.mixup_prob:
            other = decode(int(torch.randint(0, count, ())))
            blend_size = tuple(int(v) for v in sample[0].shape[-2:])
            sample = mixup(
                sample, transform(other.image, other.boxes, other.labels, other.image_id, blend_size)
            )
        return sample
