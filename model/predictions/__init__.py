"""What ``rtdetr inference`` writes per image: KITTI label lines and COCO detection records
(``files``) and the annotated copy with boxes, names and scores drawn (``drawing``)."""

from __future__ import annotations

from model.predictions.files import Detection, coco_records, kitti_line, parse_kitti_line, unique_output_names

__all__ = ["Detection", "coco_records", "kitti_line", "parse_kitti_line", "unique_output_names"]
