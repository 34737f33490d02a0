"""COCO evaluation of a network on ``dataset.test_data_sources`` with the ``evaluate.*`` settings: what
``rtdetr evaluate`` reports and ``rtdetr quantize`` scores the float and the quantized model with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from model.config.defaults import spec_section

__all__ = ["ScoreThreshold", "action_batch_size", "evaluate_model"]


class ScoreThreshold(nn.Module):
    """Wraps a post-processor: drops detections scoring below ``threshold`` (0 keeps everything)."""

    def __init__(self, postprocessor: nn.Module, threshold: float = 0.0):
        super().__init__()
        self.postprocessor = postprocessor
        self.threshold = float(threshold)

    def forward(self, outputs: dict[str, Any], orig_sizes: Tensor) -> list[dict[str, Tensor]]:
        results = self.postprocessor(outputs, orig_sizes)
        if self.threshold <= 0:
            return results
        kept = []
        for result in results:
            keep = result["scores"] >= self.threshold
            kept.append({k: v[keep] for k, v in result.items()})
        return kept


def action_batch_size(spec: Mapping[str, Any], action: str) -> int:
    """``<action>.batch_size`` images per step; -1 (or 0) means ``dataset.batch_size``."""
    value = int(spec_section(spec, action)["batch_size"] or -1)
    return value if value > 0 else int(spec_section(spec, "dataset")["batch_size"])


def evaluate_model(
    spec: Mapping[str, Any], model: nn.Module, world: Any = None, precision: str = "fp32"
) -> dict[str, Any]:
    """COCO metrics of ``model`` on ``dataset.test_data_sources`` with the ``evaluate.*`` settings.

    Returns ``evaluate_loader``'s dict (``mAP``, ``mAP50``, ``stats``, ``per_class_AP`` keyed by
    category id, ``images``) plus ``categories`` (the annotation file's id/name records).
    """
    from model.data import build_dataloader, label_to_category_id
    from model.engine.distributed import World
    from model.engine.validation import evaluate_loader
    from model.network.rtdetr import build_postprocessor

    world = world or World(rank=0, local_rank=0, size=1, device=torch.device("cpu"))
    dataset = spec_section(spec, "dataset")
    section = spec_section(spec, "evaluate")
    loader = build_dataloader(
        spec, "test", rank=world.rank, world_size=world.size, batch_size=action_batch_size(spec, "evaluate")
    )
    postprocessor = ScoreThreshold(build_postprocessor(spec), float(section["conf_threshold"] or 0.0))
    class_ids = [int(c) for c in dataset["eval_class_ids"] or []] or None
    remap = bool(dataset["remap_mscoco_category"])
    metrics = evaluate_loader(
        model,
        loader,
        postprocessor.to(world.device),
        world,
        precision=precision,
        class_ids=class_ids,
        gt_label_map=(lambda labels: label_to_category_id(labels, True)) if remap else None,
    )
    metrics["categories"] = list(getattr(loader.dataset, "categories", []))
    return metrics
