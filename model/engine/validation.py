"""One pass over an evaluation loader: loss, COCO mAP / mAP50 and per-class AP, gathered over ranks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from model.engine.coco_metrics import CocoAccumulator, coco_stats
from model.engine.distributed import World, all_gather_objects, all_reduce_mean, broadcast_object
from model.network.boxes import cxcywh_to_xyxy

__all__ = ["autocast_for", "evaluate_loader", "to_device"]


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for ``train.precision`` (fp32 | bf16 | fp16); fp16 needs a GPU."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def to_device(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, Any]]:
    return [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()} for t in targets]


def _float_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    def cast(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.float()
        if isinstance(value, dict):
            return {k: cast(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cast(v) for v in value]
        return value

    return cast(outputs)


@torch.no_grad()
def evaluate_loader(
    model: nn.Module,
    loader: Any,
    postprocessor: nn.Module,
    world: World,
    *,
    criterion: nn.Module | None = None,
    precision: str = "fp32",
    class_ids: Sequence[int] | None = None,
    max_batches: int | None = None,
    gt_label_map: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Returns ``{"loss", "mAP", "mAP50", "stats", "per_class_AP", "images"}`` (same on every rank).

    Boxes are scored in source-image pixels (``box_scale`` when the loader padded the image, else
    ``orig_size``); ``gt_label_map`` maps ground-truth labels into the post-processor's label space
    (COCO category ids with ``remap_mscoco_category``).
    """
    was_training = model.training
    model.eval()
    acc = CocoAccumulator()
    loss_total, batches = 0.0, 0
    for index, (images, targets) in enumerate(loader):
        if max_batches is not None and index >= max_batches:
            break
        images = images.to(world.device, non_blocking=True)
        targets = to_device(targets, world.device)
        with autocast_for(precision, world.device):
            outputs = model(images)
        outputs = _float_outputs(outputs)
        if criterion is not None:
            losses = criterion(outputs, targets)
            loss_total += float(sum(losses.values()).item())
        batches += 1
        sizes = torch.stack(
            [torch.as_tensor(t.get("box_scale", t["orig_size"]), device=world.device) for t in targets]
        ).float()
        results = postprocessor(outputs, sizes)
        for target, result in zip(targets, results):
            w, h = (float(v) for v in target["orig_size"])
            sw, sh = (float(v) for v in target.get("box_scale", target["orig_size"]))
            gt = cxcywh_to_xyxy(target["boxes"].float()) * torch.tensor([sw, sh, sw, sh], device=world.device)
            image_id = int(target["image_id"])
            labels = target["labels"].cpu().numpy()
            if gt_label_map is not None:
                labels = gt_label_map(labels)
            acc.add_image(image_id, w, h, gt.cpu().numpy(), labels)
            acc.add_detections(
                image_id,
                result["boxes"].float().cpu().numpy(),
                result["labels"].cpu().numpy(),
                result["scores"].float().cpu().numpy(),
            )
    model.train(was_training)
    loss = all_reduce_mean(loss_total / max(1, batches), world) if criterion is not None else float("nan")
    states = all_gather_objects(acc.state(), world)
    metrics: dict[str, Any] | None = None
    if world.is_main:
        merged = CocoAccumulator()
        merged.merge(states)
        metrics = coco_stats(merged, class_ids)
        metrics["images"] = len(merged.images)
    metrics = broadcast_object(metrics, world)
    assert metrics is not None  # internal invariant: rank 0 always fills it
    metrics["loss"] = loss
    return metrics
