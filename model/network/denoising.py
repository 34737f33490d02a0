"""Contrastive denoising (CDN) queries: noised copies of the ground truth fed to the decoder.

Each group holds a positive copy (small box noise, to reconstruct) and a negative copy (large
noise, to reject) of every padded ground-truth box. A batch without any ground truth gets one
masked dummy query so every rank of a DDP job runs the same graph (official fix, RT-DETR #672).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from model.network.boxes import cxcywh_to_xyxy, inverse_sigmoid, xyxy_to_cxcywh

__all__ = ["DenoisingQueries", "build_denoising_queries", "denoising_attention_mask"]


@dataclass
class DenoisingQueries:
    """Decoder inputs for the dn part and what the criterion needs to supervise it."""

    content: Tensor  # (B, num_dn, C) class embeddings of the (noised) labels
    boxes_unact: Tensor  # (B, num_dn, 4) logits of the (noised) boxes
    attn_mask: Tensor  # (num_dn + num_queries,)*2 bool, True = blocked
    meta: dict[str, Any]  # dn_positive_idx, dn_num_group, dn_num_split


def denoising_attention_mask(num_dn: int, group_size: int, num_queries: int, device: torch.device) -> Tensor:
    """Matching queries cannot see dn queries; dn groups cannot see each other."""
    size = num_dn + num_queries
    mask = torch.zeros(size, size, dtype=torch.bool, device=device)
    mask[num_dn:, :num_dn] = True
    group = torch.arange(num_dn, device=device) // group_size
    mask[:num_dn, :num_dn] = group[:, None] != group[None, :]
    return mask


def build_denoising_queries(
    targets: list[dict[str, Tensor]],
    num_classes: int,
    num_queries: int,
    class_embed: nn.Embedding,
    num_denoising: int = 100,
    label_noise_ratio: float = 0.5,
    box_noise_scale: float = 1.0,
) -> DenoisingQueries:
    """CDN groups for a batch of targets (labels (N,), boxes (N, 4) cx cy w h normalised)."""
    num_gts = [len(t["labels"]) for t in targets]
    device = class_embed.weight.device
    dtype = class_embed.weight.dtype
    max_gt = max(num_gts) if num_gts else 0
    empty_batch = max_gt == 0
    if empty_batch:
        max_gt, num_group = 1, 1
    else:
        num_group = max(1, num_denoising // max_gt)
    bs = len(targets)

    labels = torch.full([bs, max_gt], num_classes, dtype=torch.int64, device=device)
    boxes = torch.zeros([bs, max_gt, 4], dtype=dtype, device=device)
    pad_mask = torch.zeros([bs, max_gt], dtype=torch.bool, device=device)
    if empty_batch:
        boxes[..., :2] = 0.5
        boxes[..., 2:] = 0.1
    for i, (target, n) in enumerate(zip(targets, num_gts)):
        if n > 0:
            labels[i, :n] = target["labels"].to(device)
            boxes[i, :n] = target["boxes"].to(device=device, dtype=dtype)
            pad_mask[i, :n] = True

    labels = labels.tile([1, 2 * num_group])
    boxes = boxes.tile([1, 2 * num_group, 1])
    pad_mask = pad_mask.tile([1, 2 * num_group])
    negative = torch.zeros([bs, max_gt * 2, 1], dtype=dtype, device=device)
    negative[:, max_gt:] = 1
    negative = negative.tile([1, num_group, 1])
    positive = (1 - negative).squeeze(-1) * pad_mask
    positive_idx = torch.nonzero(positive)[:, 1].split([n * num_group for n in num_gts])
    num_dn = int(max_gt * 2 * num_group)

    if label_noise_ratio > 0:
        flip = torch.rand(labels.shape, device=device) < (label_noise_ratio * 0.5)
        new_labels = torch.randint_like(labels, 0, num_classes)
        labels = torch.where(flip & pad_mask, new_labels, labels)

    if box_noise_scale > 0:
        corners = cxcywh_to_xyxy(boxes)
        diff = torch.tile(boxes[..., 2:] * 0.5, [1, 1, 2]) * box_noise_scale
        sign = torch.randint_like(boxes, 0, 2) * 2.0 - 1.0
        part = torch.rand_like(boxes)
        part = (part + 1.0) * negative + part * (1 - negative)
        corners = torch.clip(corners + sign * part * diff, min=0.0, max=1.0)
        boxes = xyxy_to_cxcywh(corners)

    return DenoisingQueries(
        content=class_embed(labels),
        boxes_unact=inverse_sigmoid(boxes),
        attn_mask=denoising_attention_mask(num_dn, max_gt * 2, num_queries, device),
        meta={
            "dn_positive_idx": list(positive_idx),
            "dn_num_group": num_group,
            "dn_num_split": [num_dn, num_queries],
        },
    )
