"""RT-DETR training loss: VFL (or MAL, or focal) + L1 + GIoU on the final, auxiliary, encoder and dn outputs.

``num_boxes`` (the normaliser) is the number of ground-truth boxes averaged over ranks when
torch.distributed is initialised, clamped to at least 1. Loss names follow the official code:
``loss_vfl`` (``loss_mal``), ``loss_bbox``, ``loss_giou`` and the suffixes ``_aux_{i}``, ``_dn_{i}``, ``_enc_0``;
every value is already multiplied by its weight.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from model.network.boxes import box_iou, cxcywh_to_xyxy, generalized_box_iou

__all__ = ["Indices", "RTDETRCriterion"]

Indices = list[tuple[Tensor, Tensor]]


def _src_permutation(indices: Indices, device: torch.device) -> tuple[Tensor, Tensor]:
    batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)]).to(device)
    src = torch.cat([src for src, _ in indices]).to(device)
    return batch, src


def _matched_targets(
    targets: list[dict[str, Tensor]], indices: Indices, key: str, device: torch.device
) -> Tensor:
    return torch.cat([t[key][j.to(t[key].device)] for t, (_, j) in zip(targets, indices)], dim=0).to(device)


class RTDETRCriterion(nn.Module):
    """Set-prediction loss with Hungarian matching (RTDETRCriterionv2 of the official code)."""

    def __init__(
        self,
        matcher: nn.Module,
        weight_dict: dict[str, float],
        losses: list[str],
        alpha: float = 0.75,
        gamma: float = 2.0,
        num_classes: int = 80,
        mal_gamma: float = 1.5,
    ):
        super().__init__()
        self.matcher = matcher
        self.weight_dict = dict(weight_dict)
        self.losses = list(losses)
        self.alpha = alpha
        self.gamma = gamma
        self.mal_gamma = mal_gamma
        self.num_classes = num_classes

    # --- individual losses ------------------------------------------------------------------
    def _target_classes(self, logits: Tensor, targets: list[dict[str, Tensor]], indices: Indices) -> Tensor:
        idx = _src_permutation(indices, logits.device)
        classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        classes[idx] = _matched_targets(targets, indices, "labels", logits.device).to(torch.int64)
        return F.one_hot(classes, num_classes=self.num_classes + 1)[..., :-1]

    def _iou_targets(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], indices: Indices
    ) -> tuple[Tensor, Tensor]:
        """The one-hot class target (B, Q, C) and, at the matched class, the detached IoU of each match."""
        logits = outputs["pred_logits"]
        idx = _src_permutation(indices, logits.device)
        src_boxes = outputs["pred_boxes"][idx]
        tgt_boxes = _matched_targets(targets, indices, "boxes", logits.device).to(src_boxes.dtype)
        ious, _ = box_iou(cxcywh_to_xyxy(src_boxes), cxcywh_to_xyxy(tgt_boxes))
        ious = torch.diag(ious).detach()
        target = self._target_classes(logits, targets, indices)
        score = torch.zeros(logits.shape[:2], dtype=logits.dtype, device=logits.device)
        score[idx] = ious.to(score.dtype)
        return target, score.unsqueeze(-1) * target

    def loss_vfl(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], indices: Indices, num_boxes: float
    ) -> dict[str, Tensor]:
        logits = outputs["pred_logits"]
        target, target_score = self._iou_targets(outputs, targets, indices)
        pred_score = F.sigmoid(logits).detach()
        weight = self.alpha * pred_score.pow(self.gamma) * (1 - target) + target_score
        loss = F.binary_cross_entropy_with_logits(logits, target_score, weight=weight, reduction="none")
        return {"loss_vfl": loss.mean(1).sum() * logits.shape[1] / num_boxes}

    def loss_mal(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], indices: Indices, num_boxes: float
    ) -> dict[str, Tensor]:
        """Matchability-aware loss (DEIM): a matched query's target is IoU ** mal_gamma at full weight.

        VFL weighs a positive by its IoU, so a match with a poor box (common early on, and with the many
        small matches that mosaic makes) barely learns; MAL keeps its weight at 1 and lowers the target
        instead. Unmatched queries are down-weighted by their own score ** mal_gamma, as in VFL.
        """
        logits = outputs["pred_logits"]
        target, target_score = self._iou_targets(outputs, targets, indices)
        target_score = target_score.pow(self.mal_gamma)
        pred_score = F.sigmoid(logits).detach()
        weight = pred_score.pow(self.mal_gamma) * (1 - target) + target
        loss = F.binary_cross_entropy_with_logits(logits, target_score, weight=weight, reduction="none")
        return {"loss_mal": loss.mean(1).sum() * logits.shape[1] / num_boxes}

    def loss_focal(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], indices: Indices, num_boxes: float
    ) -> dict[str, Tensor]:
        logits = outputs["pred_logits"]
        target = self._target_classes(logits, targets, indices).to(logits.dtype)
        loss = torchvision.ops.sigmoid_focal_loss(logits, target, self.alpha, self.gamma, reduction="none")
        return {"loss_focal": loss.mean(1).sum() * logits.shape[1] / num_boxes}

    def loss_boxes(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]], indices: Indices, num_boxes: float
    ) -> dict[str, Tensor]:
        pred = outputs["pred_boxes"]
        idx = _src_permutation(indices, pred.device)
        src = pred[idx]
        tgt = _matched_targets(targets, indices, "boxes", pred.device).to(src.dtype)
        loss_bbox = F.l1_loss(src, tgt, reduction="none").sum() / num_boxes
        giou = torch.diag(generalized_box_iou(cxcywh_to_xyxy(src), cxcywh_to_xyxy(tgt)))
        return {"loss_bbox": loss_bbox, "loss_giou": (1 - giou).sum() / num_boxes}

    def _weighted(
        self,
        outputs: dict[str, Tensor],
        targets: list[dict[str, Tensor]],
        indices: Indices,
        num_boxes: float,
        suffix: str,
    ) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for name in self.losses:
            fn = {
                "vfl": self.loss_vfl,
                "mal": self.loss_mal,
                "focal": self.loss_focal,
                "boxes": self.loss_boxes,
            }[name]
            for key, value in fn(outputs, targets, indices, num_boxes).items():
                if key in self.weight_dict:
                    out[key + suffix] = value * self.weight_dict[key]
        return out

    # --- whole loss -------------------------------------------------------------------------
    @staticmethod
    def average_num_boxes(targets: list[dict[str, Tensor]], device: torch.device) -> float:
        """Ground-truth boxes per rank (all-reduced mean under torch.distributed), at least 1."""
        num = torch.as_tensor(
            [float(sum(len(t["labels"]) for t in targets))], dtype=torch.float, device=device
        )
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num)
            world = dist.get_world_size()
        return torch.clamp(num / world, min=1).item()

    @staticmethod
    def dn_indices(dn_meta: dict[str, Any], targets: list[dict[str, Tensor]]) -> Indices:
        """Fixed matches of the positive denoising queries to their ground truth."""
        positive, groups = dn_meta["dn_positive_idx"], dn_meta["dn_num_group"]
        indices = []
        for i, target in enumerate(targets):
            n = len(target["labels"])
            if n > 0:
                gt = torch.arange(n, dtype=torch.int64).tile(groups)
                indices.append((positive[i].cpu(), gt))
            else:
                empty = torch.zeros(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
        return indices

    def forward(self, outputs: dict[str, Any], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        device = outputs["pred_logits"].device
        num_boxes = self.average_num_boxes(targets, device)
        main = {"pred_logits": outputs["pred_logits"], "pred_boxes": outputs["pred_boxes"]}
        losses = self._weighted(main, targets, self.matcher(main, targets)["indices"], num_boxes, "")
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            losses.update(
                self._weighted(aux, targets, self.matcher(aux, targets)["indices"], num_boxes, f"_aux_{i}")
            )
        if "dn_aux_outputs" in outputs:
            meta = outputs["dn_meta"]
            indices = self.dn_indices(meta, targets)
            dn_boxes = num_boxes * meta["dn_num_group"]
            for i, aux in enumerate(outputs["dn_aux_outputs"]):
                losses.update(self._weighted(aux, targets, indices, dn_boxes, f"_dn_{i}"))
        for i, aux in enumerate(outputs.get("enc_aux_outputs", [])):
            losses.update(
                self._weighted(aux, targets, self.matcher(aux, targets)["indices"], num_boxes, f"_enc_{i}")
            )
        return losses
