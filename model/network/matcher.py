"""Hungarian matching of predictions to ground truth (focal class cost, L1 and GIoU box costs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from model.errors import ConfigError
from model.network.boxes import cxcywh_to_xyxy, generalized_box_iou

__all__ = ["HungarianMatcher"]


class HungarianMatcher(nn.Module):
    """One-to-one assignment per image minimising class, L1 and GIoU costs (solved with scipy)."""

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
    ):
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ConfigError(
                "model.class_cost, model.bbox_cost and model.giou_cost are all 0; at least one must be positive."
            )
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou
        self.alpha = alpha
        self.gamma = gamma

    @torch.no_grad()
    def forward(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]]
    ) -> dict[str, list[tuple[Tensor, Tensor]]]:
        """``{'indices': [(pred_idx, target_idx) per image]}``, both int64 on the CPU."""
        indices = []
        for i, target in enumerate(targets):
            labels, boxes = target["labels"], target["boxes"]
            if len(labels) == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            prob = F.sigmoid(outputs["pred_logits"][i])[:, labels]
            pred_boxes = outputs["pred_boxes"][i]
            boxes = boxes.to(pred_boxes.dtype)
            neg = (1 - self.alpha) * prob**self.gamma * (-(1 - prob + 1e-8).log())
            pos = self.alpha * (1 - prob) ** self.gamma * (-(prob + 1e-8).log())
            cost = (
                self.cost_bbox * torch.cdist(pred_boxes, boxes, p=1)
                + self.cost_class * (pos - neg)
                - self.cost_giou * generalized_box_iou(cxcywh_to_xyxy(pred_boxes), cxcywh_to_xyxy(boxes))
            )
            cost = cost.cpu()
            if cost.dtype not in (torch.float32, torch.float64):
                cost = cost.float()
            cost = torch.nan_to_num(cost, nan=1e8, posinf=1e8, neginf=-1e8)
            rows, cols = linear_sum_assignment(cost.numpy())
            indices.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return {"indices": indices}
