"""``rtdetr evaluate -e spec.yaml [key=value ...]``: COCO box metrics of a checkpoint on the test set.

The model built from the spec loads ``evaluate.checkpoint`` (EMA weights when present) and runs in
eval mode (under bf16/fp16 autocast with ``evaluate.precision``), or, when ``evaluate.trt_engine``
is set, the deployed model runs instead: an ``.onnx`` file from ``rtdetr export`` in ONNX Runtime, or
a TensorRT ``.engine``, at the size it was exported for, with the same pre- and post-processing.
It runs over ``dataset.test_data_sources``, ``evaluate.batch_size`` images per process (-1 =
``dataset.batch_size``). Detections below ``evaluate.conf_threshold`` are dropped (0.0 keeps all,
as COCO evaluation expects); ``dataset.eval_class_ids`` restricts the COCOeval categories. Under
``evaluate.num_gpus > 1`` or ``evaluate.num_nodes > 1`` the command re-runs itself under torchrun and
the detections of every process are gathered before scoring. A checkpoint runs at
``dataset.augmentation.eval_spatial_size`` (``evaluate.input_width/input_height`` are for deployed
models, as in TAO).

Ground truth and detections are compared in source-image pixels and in json category ids (with
``dataset.remap_mscoco_category`` the 0..79 labels are mapped back to COCO's ids on both sides).

Output in ``evaluate.results_dir`` (default ``<results_dir>/evaluate``): ``status.json`` (STARTED,
then SUCCESS with kpi ``test_mAP``, ``test_mAP50`` and ``test_<stat>`` for COCO's 12 numbers),
``results.json`` and ``experiment.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from model.config.defaults import spec_section
from model.engine.action_session import action_session, launch
from model.engine.coco_metrics import STAT_NAMES
from model.engine.evaluation import evaluate_model

__all__ = ["STAT_DESCRIPTIONS", "evaluate_worker", "format_stats", "run"]

STAT_DESCRIPTIONS = (
    "AP  @[IoU=0.50:0.95 | area=   all | maxDets=100]",
    "AP  @[IoU=0.50      | area=   all | maxDets=100]",
    "AP  @[IoU=0.75      | area=   all | maxDets=100]",
    "AP  @[IoU=0.50:0.95 | area= small | maxDets=100]",
    "AP  @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AP  @[IoU=0.50:0.95 | area= large | maxDets=100]",
    "AR  @[IoU=0.50:0.95 | area=   all | maxDets=  1]",
    "AR  @[IoU=0.50:0.95 | area=   all | maxDets= 10]",
    "AR  @[IoU=0.50:0.95 | area=   all | maxDets=100]",
    "AR  @[IoU=0.50:0.95 | area= small | maxDets=100]",
    "AR  @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AR  @[IoU=0.50:0.95 | area= large | maxDets=100]",
)


def format_stats(stats: Sequence[float]) -> str:
    """COCO's 12 numbers as a table: name, what it measures, value."""
    lines = [f"{'metric':<10} {'definition':<50} {'value':>7}"]
    for name, text, value in zip(STAT_NAMES, STAT_DESCRIPTIONS, stats):
        lines.append(f"{name:<10} {text:<50} {value:7.4f}")
    return "\n".join(lines)


def _results(spec: Mapping[str, Any], metrics: Mapping[str, Any], run: Any) -> dict[str, Any]:
    names = {str(c["id"]): str(c["name"]) for c in metrics["categories"] if c.get("name") is not None}
    per_class = {str(k): float(v) for k, v in metrics["per_class_AP"].items()}
    section = spec_section(spec, "evaluate")
    dataset = spec_section(spec, "dataset")
    results: dict[str, Any] = {
        "checkpoint": str(section["checkpoint"]),
        "trt_engine": run.path if run.deployed else "",
        "weights": run.source,
        "precision": run.precision,
        "input_size": list(run.spec["dataset"]["augmentation"]["eval_spatial_size"]),
        "test_data_sources": dataset["test_data_sources"],
        "images": int(metrics["images"]),
        "mAP": float(metrics["mAP"]),
        "mAP50": float(metrics["mAP50"]),
        "stats": {name: float(v) for name, v in zip(STAT_NAMES, metrics["stats"])},
        "per_class_AP": per_class,
        "class_names": {k: names[k] for k in per_class if k in names},
        "conf_threshold": float(section["conf_threshold"] or 0.0),
        "eval_class_ids": list(dataset["eval_class_ids"] or []),
        "remap_mscoco_category": bool(dataset["remap_mscoco_category"]),
    }
    if names:
        results["per_class_AP_by_name"] = {names[k]: v for k, v in per_class.items() if k in names}
    return results


def run(spec: dict[str, Any], argv: Sequence[str]) -> int:
    return launch(spec, "evaluate", argv, evaluate_worker)


def evaluate_worker(spec: dict[str, Any]) -> int:
    """One process of the evaluation (the only one without torchrun)."""
    from model.engine.model_to_run import model_to_run
    from model.engine.status import SUCCESS

    with action_session(spec, "evaluate", "Starting RT-DETR evaluate.") as (results_dir, world, status):
        chosen = model_to_run(spec, "evaluate", world.device)
        if world.is_main:
            print(chosen.summary, flush=True)
        metrics = evaluate_model(chosen.spec, chosen.model.to(world.device), world, chosen.precision)
        results = _results(spec, metrics, chosen)
        if world.is_main:
            (results_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
            print(f"COCO box metrics on {results['images']} test images ({chosen.path}):")
            print(format_stats(metrics["stats"]), flush=True)
            print(f"Results in {results_dir}", flush=True)
        kpi = {"test_mAP": results["mAP"], "test_mAP50": results["mAP50"]}
        kpi.update({f"test_{name}": value for name, value in results["stats"].items()})
        status.write(SUCCESS, "Evaluation finished successfully.", kpi=kpi)
    return 0
