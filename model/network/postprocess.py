"""Post-processing: top-k over queries x classes, boxes scaled to the original image size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.network.boxes import cxcywh_to_xyxy

__all__ = ["MSCOCO_LABEL_TO_CATEGORY", "RTDETRPostProcessor"]

# COCO category ids of the 80 contiguous labels (the 91-id list without the 11 unused ids).
_UNUSED_COCO_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
MSCOCO_LABEL_TO_CATEGORY = [i for i in range(1, 91) if i not in _UNUSED_COCO_IDS]


class RTDETRPostProcessor(nn.Module):
    """Sigmoid scores, the ``num_top_queries`` best (query, class) pairs per image.

    ``orig_target_sizes`` is (B, 2) as [width, height]. The same query can appear with several
    classes; no score threshold is applied. ``deploy()`` makes ``forward`` return the tuple
    (labels, boxes, scores) for export.
    """

    def __init__(
        self, num_classes: int = 80, num_top_queries: int = 300, remap_mscoco_category: bool = False
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.num_top_queries = int(num_top_queries)
        self.remap_mscoco_category = remap_mscoco_category
        self.deploy_mode = False

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, num_top_queries={self.num_top_queries}"

    def forward(
        self, outputs: dict[str, Tensor], orig_target_sizes: Tensor
    ) -> list[dict[str, Tensor]] | tuple[Tensor, Tensor, Tensor]:
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        boxes_xyxy = cxcywh_to_xyxy(boxes) * orig_target_sizes.repeat(1, 2).unsqueeze(1).to(boxes.dtype)
        k = min(self.num_top_queries, logits.shape[1] * logits.shape[2])
        scores, index = torch.topk(F.sigmoid(logits).flatten(1), k, dim=-1)
        labels = index - index // self.num_classes * self.num_classes
        query = index // self.num_classes
        picked = boxes_xyxy.gather(1, query.unsqueeze(-1).expand(-1, -1, 4))
        if self.deploy_mode:
            return labels, picked, scores
        if self.remap_mscoco_category:
            table = torch.tensor(MSCOCO_LABEL_TO_CATEGORY, device=labels.device)
            labels = table[labels]
        return [{"labels": lab, "boxes": box, "scores": sco} for lab, box, sco in zip(labels, picked, scores)]

    def deploy(self) -> RTDETRPostProcessor:
        self.eval()
        self.deploy_mode = True
        return self
