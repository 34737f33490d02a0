"""What every ``rtdetr quantize`` backend measures: the float model it starts from, the data set it
scores on, the mAP before and after (as ``rtdetr evaluate`` measures it) and the size of the weights."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from model.config.defaults import spec_section
from model.errors import CheckpointError

__all__ = ["evaluation_spec", "load_float_model", "score", "weights_bytes"]


def evaluation_spec(spec: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The spec whose test split is scored: the test set, or the validation set when none is given."""
    dataset = spec_section(spec, "dataset")
    test = dataset["test_data_sources"] or {}
    if isinstance(test, Mapping) and test.get("image_dir") and test.get("json_file"):
        return dict(spec), "dataset.test_data_sources"
    view = dict(spec)
    view["dataset"] = {**(spec.get("dataset") or {}), "test_data_sources": dataset["val_data_sources"]}
    return view, "dataset.val_data_sources"


def weights_bytes(model: nn.Module) -> int:
    """Size of the network's weights as torch.save writes them (what the checkpoint file costs)."""
    from model.checkpoints.quantized_file import quantized_state

    buffer = io.BytesIO()
    torch.save(quantized_state(model), buffer)
    return buffer.tell()


def load_float_model(spec: Mapping[str, Any]) -> tuple[nn.Module, str]:
    """``quantize.model_path`` (a float training checkpoint) loaded into the spec's network."""
    from model.checkpoints.quantized_file import is_quantized_checkpoint
    from model.checkpoints.trained_model import load_trained_model

    path = str(spec_section(spec, "quantize")["model_path"] or "")
    if is_quantized_checkpoint(path):
        raise CheckpointError(
            f"quantize.model_path: {path} is already quantized; give the float training checkpoint "
            "(e.g. <results_dir>/train/model_epoch_NNN.pth)"
        )
    view = {**spec, "quantize": {**spec["quantize"], "checkpoint": path, "trt_engine": ""}}
    try:
        model, report = load_trained_model(view, "quantize")
    except CheckpointError as exc:
        raise CheckpointError(str(exc).replace("quantize.checkpoint", "quantize.model_path")) from None
    print(report.summary(), flush=True)
    return model, path


def score(spec: Mapping[str, Any], model: nn.Module, device: torch.device) -> dict[str, Any]:
    """mAP / mAP50 of ``model`` on the spec's test split, as ``rtdetr evaluate`` measures them."""
    from model.engine.distributed import World
    from model.engine.evaluation import evaluate_model

    world = World(rank=0, local_rank=0, size=1, device=device)
    metrics = evaluate_model(spec, model.to(device), world)
    model.to("cpu")
    return {"mAP": float(metrics["mAP"]), "mAP50": float(metrics["mAP50"]), "images": int(metrics["images"])}
