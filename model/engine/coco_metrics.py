"""COCO box AP with pycocotools, from the detections and the ground truth the eval loader yields.

The ground truth is rebuilt from the evaluation targets (boxes in original-image pixels), so every
rank can gather (ground truth, detections) pairs and rank 0 scores them: ``stats`` are COCOeval's 12
numbers; ``mAP`` = stats[0] (AP@[.5:.95]) and ``mAP50`` = stats[1]. Box area stands in for segment
area in the small/medium/large split.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["STAT_NAMES", "CocoAccumulator", "coco_stats"]

STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)  # fmt: skip  (a table: COCO's 6 AP stats, then the 6 AR stats)


class CocoAccumulator:
    """Collects per-image ground truth and detections in COCO's json form."""

    def __init__(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.gts: list[dict[str, Any]] = []
        self.dets: list[dict[str, Any]] = []

    def add_image(
        self, image_id: int, width: float, height: float, gt_boxes_xyxy: np.ndarray, gt_labels: np.ndarray
    ) -> None:
        self.images.append({"id": int(image_id), "width": float(width), "height": float(height)})
        for box, label in zip(gt_boxes_xyxy.tolist(), gt_labels.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            self.gts.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(label),
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )

    def add_detections(
        self, image_id: int, boxes_xyxy: np.ndarray, labels: np.ndarray, scores: np.ndarray
    ) -> None:
        for box, label, score in zip(boxes_xyxy.tolist(), labels.tolist(), scores.tolist()):
            self.dets.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(label),
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "score": float(score),
                }
            )

    def state(self) -> tuple[list, list, list]:
        return self.images, self.gts, self.dets

    def merge(self, states: Iterable[tuple[list, list, list]]) -> None:
        seen = {img["id"] for img in self.images}
        for images, gts, dets in states:
            fresh = {img["id"] for img in images} - seen
            self.images += [img for img in images if img["id"] in fresh]
            self.gts += [g for g in gts if g["image_id"] in fresh]
            self.dets += [d for d in dets if d["image_id"] in fresh]
            seen |= fresh


def coco_stats(acc: CocoAccumulator, class_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """COCOeval over the accumulated images: the 12 stats and per-class AP."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    categories = sorted(
        {g["category_id"] for g in acc.gts} | {d["category_id"] for d in acc.dets} | set(class_ids or [])
    )
    if not acc.gts:
        return {"stats": [0.0] * 12, "per_class_AP": {}, "mAP": 0.0, "mAP50": 0.0}
    gt = COCO()
    gt.dataset = {
        "images": acc.images,
        "annotations": [{**g, "id": i + 1} for i, g in enumerate(acc.gts)],
        "categories": [{"id": c, "name": str(c)} for c in categories],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([dict(d) for d in acc.dets]) if acc.dets else COCO()
        if not acc.dets:
            return {"stats": [0.0] * 12, "per_class_AP": {}, "mAP": 0.0, "mAP50": 0.0}
        evaluator = COCOeval(gt, dt, "bbox")
        if class_ids:
            evaluator.params.catIds = [c for c in class_ids if c in categories]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(max(s, 0.0)) for s in evaluator.stats]
    per_class: dict[str, float] = {}
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    for k, cat in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        per_class[str(cat)] = float(p.mean()) if p.size else 0.0
    return {"stats": stats, "per_class_AP": per_class, "mAP": stats[0], "mAP50": stats[1]}
