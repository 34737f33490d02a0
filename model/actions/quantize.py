"""``rtdetr quantize -e spec.yaml [key=value ...]``: post-training quantization of a trained checkpoint.

Reads ``quantize.model_path`` (a training checkpoint), measures its COCO mAP on
``dataset.test_data_sources`` (``dataset.val_data_sources`` when no test set is given), quantizes the
modules ``quantize.layers`` selects (minus ``quantize.skip_names``), measures again and writes the
quantized model. Runs on a CPU or a GPU (``quantize.device``; cuda falls back to the CPU):

- ``backend: torchao``, ``mode: weight_only_ptq``: int8, fp8_e4m3fn or fp8_e5m2 weights (``float8_*``
  spellings accepted) stored quantized, about 4x smaller; fp8 is simulated where the hardware has no
  fp8 arithmetic (``model/quantize/torchao_backend.py``). No calibration data is read.
- ``backend: modelopt.pytorch``, ``mode: static_ptq``, ``algorithm: max``, ``awq_lite`` or ``awq_full``:
  int8 or fp8_e4m3fn weights and activations, fake-quantized, calibrated on
  ``dataset.quant_calibration_data_sources``; AWQ rescales the Linear layers, convolutions get ``max``
  (``model/quantize/modelopt_backend.py``); the file is not smaller.
- ``backend: modelopt.onnx``, ``mode: static_ptq``: the checkpoint is exported to ONNX (or
  ``model_path`` is already an ``.onnx`` file) and ModelOpt writes a QDQ ONNX file: int8 or fp8 with
  ``max`` / ``entropy`` calibration, or int4 weight-only Linear layers with ``awq_clip``, ``awq_lite``,
  ``awq_full`` or ``rtn_dq`` (``model/actions/quantize_onnx.py``,
  ``model/quantize/modelopt_onnx_backend.py``). The before/after mAPs are ONNX Runtime's on the float
  and the quantized file, as ``rtdetr evaluate evaluate.trt_engine=<file>`` measures them; sizes are
  the two files'.

Other combinations are refused at validation with what to use instead (``model/quantize/combinations.py``).

Output in ``quantize.results_dir`` (default ``<results_dir>/quantize``): ``quantized_model_<backend>.pth``
(load it with ``evaluate.checkpoint`` / ``inference.checkpoint``, and torchao files with
``export.checkpoint``; ``is_quantized: true`` is optional), or for modelopt.onnx
``quantized_model_modelopt_onnx.onnx`` (run it with ``evaluate.trt_engine`` / ``inference.trt_engine``, or
build a TensorRT engine from it with ``gen_trt_engine.onnx_file``) beside the ``float_model.onnx`` it was
made from; ``results.json``, ``experiment.yaml`` and ``status.json`` (STARTED, then SUCCESS with kpi
``test_mAP50_before``, ``test_mAP50`` (after), ``test_mAP_before``, ``test_mAP``, ``model_size_before_mb``,
``model_size_after_mb`` and ``size_ratio``).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.actions.common import action_session
from model.errors import CheckpointError, ConfigError

__all__ = [
    "FLOAT_ONNX_FILE",
    "ONNX_FILE",
    "QUANTIZED_FILE",
    "evaluation_spec",
    "load_float_model",
    "quantize_worker",
    "report_quantized",
    "run",
    "score",
]

QUANTIZED_FILE = "quantized_model_{backend}.pth"
ONNX_FILE = "quantized_model_modelopt_onnx.onnx"
"""modelopt.onnx's output: a QDQ ONNX file (``evaluate.trt_engine`` / ``gen_trt_engine.onnx_file``)."""
FLOAT_ONNX_FILE = "float_model.onnx"
"""The float ONNX file modelopt.onnx quantized (exported from ``quantize.model_path``)."""
_MB = 1024 * 1024


def run(spec: dict[str, Any], argv: Sequence[str]) -> int:
    del argv
    return quantize_worker(spec)


def _device(section: Mapping[str, Any]) -> torch.device:
    """``quantize.device``: cuda[:N] when a GPU exists (else the CPU, as TAO falls back), or cpu."""
    value = str(section.get("device") or "cuda")
    if value.startswith("cuda") and torch.cuda.is_available():
        return torch.device(value)
    if value.startswith("cuda"):
        print(f"quantize.device={value}: no GPU is available here; running on the CPU", flush=True)
    return torch.device("cpu")


def evaluation_spec(spec: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The spec whose test split is scored: the test set, or the validation set when none is given."""
    dataset = spec.get("dataset") or {}
    test = dataset.get("test_data_sources") or {}
    if isinstance(test, Mapping) and test.get("image_dir") and test.get("json_file"):
        return dict(spec), "dataset.test_data_sources"
    view = dict(spec)
    view["dataset"] = {**dataset, "test_data_sources": dataset.get("val_data_sources")}
    return view, "dataset.val_data_sources"


def _weights_bytes(model: nn.Module) -> int:
    """Size of the network's weights as torch.save writes them (what the checkpoint file costs)."""
    from model.quantize.quantized_file import quantized_state

    buffer = io.BytesIO()
    torch.save(quantized_state(model), buffer)
    return buffer.tell()


def load_float_model(spec: Mapping[str, Any]) -> tuple[nn.Module, str]:
    from model.actions.trained_model import load_trained_model
    from model.quantize.quantized_file import is_quantized_checkpoint

    path = str((spec.get("quantize") or {}).get("model_path") or "")
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
    from model.actions.evaluate import evaluate_model
    from model.engine.distributed import World

    world = World(rank=0, local_rank=0, size=1, device=device)
    metrics = evaluate_model(spec, model.to(device), world)
    model.to("cpu")
    return {"mAP": float(metrics["mAP"]), "mAP50": float(metrics["mAP50"]), "images": int(metrics["images"])}


def _torchao(spec: Mapping[str, Any], model: nn.Module, device: torch.device) -> dict[str, Any]:
    """Weight-only PTQ in place; returns what the recipe and results.json record."""
    from model.quantize.plan import build_plan
    from model.quantize.torchao_backend import apply_plan, torchao_version

    section = spec["quantize"]
    version = torchao_version()
    plan = build_plan(model, section)
    if not plan.layers:
        patterns = [layer.get("module_name") for layer in section.get("layers") or []]
        raise ConfigError(
            f"quantize.layers: the patterns {patterns} (minus quantize.skip_names "
            f"{section.get('skip_names') or []}) select no Linear or Conv2d module, so nothing would be "
            "quantized; use module names such as '*', 'Linear', 'Conv2d', 'backbone.*' or 'decoder.*'"
        )
    for what in plan.ignored_activations:
        print(f"note: {what}: weight_only_ptq quantizes weights only; the activation dtype is ignored")
    for name, why in sorted(plan.kept_float.items()):
        print(f"note: {name} stays in float ({why})")
    apply_plan(model.to("cpu"), plan)
    print(f"torchao {version}: {plan.summary()}", flush=True)
    del device
    return {
        "recipe": {"torchao_version": version, "plan": plan.to_records()},
        "results": {
            "torchao_version": version,
            "quantized_modules": plan.to_records(),
            "kept_float": plan.kept_float,
            "ignored_activation_settings": plan.ignored_activations,
            "arithmetic": (
                "weights stored quantized (int8/fp8 with one scale per output channel); Conv2d weights, and "
                "fp8 weights on hardware without fp8 units, are dequantized for each call (simulated)"
            ),
        },
    }


def _modelopt(spec: Mapping[str, Any], model: nn.Module, device: torch.device) -> dict[str, Any]:
    """Static PTQ with ModelOpt, calibrated on dataset.quant_calibration_data_sources."""
    from model.data import build_dataloader
    from model.quantize.modelopt_backend import (
        count_enabled_quantizers,
        modelopt_quantize,
        modelopt_state,
        modelopt_version,
    )

    section = spec["quantize"]
    version = modelopt_version()
    dataset = spec["dataset"]
    # One pass over the calibration images in this process: persistent loader workers kept alive by
    # ModelOpt's reference to the calibration loop would hold the process at exit.
    view = {
        **spec,
        "dataset": {
            **dataset,
            "test_data_sources": dataset.get("quant_calibration_data_sources"),
            "workers": 0,
        },
    }
    loader = build_dataloader(view, "test", batch_size=int(dataset.get("batch_size", 4)))
    try:
        model = modelopt_quantize(model.to(device), section, loader, device).to("cpu")
    except RuntimeError as exc:
        if "nothing would be quantized" not in str(exc):
            raise
        patterns = [layer.get("module_name") for layer in section.get("layers") or []]
        raise ConfigError(
            f"quantize.layers: the patterns {patterns} (minus quantize.skip_names) enable no weight quantizer "
            "of ModelOpt, so nothing would be quantized; use module names such as '*', 'Conv2d', 'Linear', "
            "'backbone' or 'decoder.*'"
        ) from None
    counts = count_enabled_quantizers(model)
    print(
        f"modelopt {version}: {counts['weight']} weight and {counts['input']} input quantizers calibrated on "
        f"{len(loader.dataset)} images of dataset.quant_calibration_data_sources",
        flush=True,
    )
    return {
        "model": model,
        "modelopt_state": modelopt_state(model),
        "recipe": {"modelopt_version": version},
        "results": {
            "modelopt_version": version,
            "enabled_quantizers": counts,
            "calibration_images": len(loader.dataset),
            "arithmetic": (
                "fake-quantized: weights and activations are rounded to the chosen dtype in every call but "
                "stored as float, so the checkpoint is not smaller; build a TensorRT engine from its export "
                "for the speed and size gain"
            ),
        },
    }


def report_quantized(
    results_dir: Path,
    status: Any,
    results: dict[str, Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    sizes: tuple[int, int],
    what: str,
) -> None:
    """results.json, the summary line and the SUCCESS status line with the kpis every backend writes."""
    from model.engine.status import SUCCESS

    size_before, size_after = sizes
    (results_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(
        f"mAP50 {before['mAP50']:.4f} -> {after['mAP50']:.4f}, mAP {before['mAP']:.4f} -> "
        f"{after['mAP']:.4f} on {before['images']} images; {what} {size_before / _MB:.2f} MB -> "
        f"{size_after / _MB:.2f} MB. Quantized model: {results['quantized_checkpoint']}",
        flush=True,
    )
    kpi = {
        "test_mAP50_before": before["mAP50"],
        "test_mAP50": after["mAP50"],
        "test_mAP_before": before["mAP"],
        "test_mAP": after["mAP"],
        "model_size_before_mb": round(size_before / _MB, 4),
        "model_size_after_mb": round(size_after / _MB, 4),
        "size_ratio": round(size_after / size_before, 4),
    }
    status.write(SUCCESS, "Quantization finished successfully.", kpi=kpi)


def quantize_worker(spec: dict[str, Any]) -> int:
    from model.quantize.quantized_file import save_quantized

    section = spec["quantize"]
    backend = str(section.get("backend"))
    with action_session(spec, "quantize", "Starting RT-DETR quantize.") as (results_dir, _world, status):
        if not section.get("layers"):
            raise ConfigError(
                "quantize.layers: empty, so nothing would be quantized; list the modules to quantize and "
                "their weight dtype, e.g. quantize.layers=[{module_name: '*', weights: {dtype: int8}}] "
                "(dtypes int8, fp8_e4m3fn, fp8_e5m2)"
            )
        device = _device(section)
        if backend == "modelopt.onnx":
            from model.actions.quantize_onnx import modelopt_onnx_quantize

            modelopt_onnx_quantize(spec, results_dir, status, device)
            return 0
        model, source = load_float_model(spec)
        eval_spec, eval_source = evaluation_spec(spec)
        print(f"Scoring the float model on {eval_source} ...", flush=True)
        before = score(eval_spec, model, device)
        size_before = _weights_bytes(model)
        started = time.time()
        done = (_modelopt if backend == "modelopt.pytorch" else _torchao)(spec, model, device)
        model = done.get("model", model)
        seconds = time.time() - started
        print(f"Quantized in {seconds:.1f} s; scoring the quantized model ...", flush=True)
        after = score(eval_spec, model, device)
        size_after = _weights_bytes(model)
        recipe = {
            "backend": backend,
            "mode": section.get("mode"),
            "algorithm": section.get("algorithm"),
            "source_checkpoint": source,
            **done["recipe"],
        }
        path = results_dir / QUANTIZED_FILE.format(backend=backend)
        save_quantized(path, model, recipe, spec, done.get("modelopt_state"))
        results = {
            "quantized_checkpoint": str(path),
            "source_checkpoint": source,
            "backend": backend,
            "mode": section.get("mode"),
            "algorithm": section.get("algorithm"),
            "evaluated_on": eval_source,
            "device": str(device),
            "seconds": round(seconds, 2),
            "before": {**before, "model_size_bytes": size_before},
            "after": {**after, "model_size_bytes": size_after},
            "file_size_bytes": path.stat().st_size,
            **done["results"],
        }
        report_quantized(results_dir, status, results, before, after, (size_before, size_after), "weights")
    return 0
