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
  ``awq_full`` or ``rtn_dq`` (``model/quantize/onnx_pipeline.py``,
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

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from model.config.defaults import spec_section
from model.engine.action_session import action_session
from model.errors import ConfigError
from model.quantize.float_model import evaluation_spec, load_float_model, score, weights_bytes
from model.quantize.results import QUANTIZED_FILE, report_quantized

__all__ = ["quantize_worker", "run"]


def run(spec: dict[str, Any], argv: Sequence[str]) -> int:
    del argv
    return quantize_worker(spec)


def _device(section: Mapping[str, Any]) -> torch.device:
    """``quantize.device``: cuda[:N] when a GPU exists (else the CPU, as TAO falls back), or cpu."""
    value = str(section["device"])
    if value.startswith("cuda") and torch.cuda.is_available():
        return torch.device(value)
    if value.startswith("cuda"):
        print(f"quantize.device={value}: no GPU is available here; running on the CPU", flush=True)
    return torch.device("cpu")


def _torchao(spec: Mapping[str, Any], model: nn.Module, device: torch.device) -> dict[str, Any]:
    """Weight-only PTQ in place; returns what the recipe and results.json record."""
    from model.quantize.plan import build_plan
    from model.quantize.torchao_backend import apply_plan, torchao_version

    section = spec_section(spec, "quantize")
    version = torchao_version()
    plan = build_plan(model, section)
    if not plan.layers:
        patterns = [layer.get("module_name") for layer in section["layers"] or []]
        raise ConfigError(
            f"quantize.layers: the patterns {patterns} (minus quantize.skip_names "
            f"{section['skip_names'] or []}) select no Linear or Conv2d module, so nothing would be "
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

    section = spec_section(spec, "quantize")
    version = modelopt_version()
    dataset = spec_section(spec, "dataset")
    # One pass over the calibration images in this process: persistent loader workers kept alive by
    # ModelOpt's reference to the calibration loop would hold the process at exit.
    view = {
        **spec,
        "dataset": {
            **spec["dataset"],
            "test_data_sources": dataset["quant_calibration_data_sources"],
            "workers": 0,
        },
    }
    loader = build_dataloader(view, "test", batch_size=int(dataset["batch_size"]))
    try:
        model = modelopt_quantize(model.to(device), section, loader, device).to("cpu")
    except RuntimeError as exc:
        if "nothing would be quantized" not in str(exc):
            raise
        patterns = [layer.get("module_name") for layer in section["layers"] or []]
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


def quantize_worker(spec: dict[str, Any]) -> int:
    from model.checkpoints.quantized_file import save_quantized

    section = spec_section(spec, "quantize")
    backend = str(section["backend"])
    with action_session(spec, "quantize", "Starting RT-DETR quantize.") as (results_dir, _world, status):
        if not section["layers"]:
            raise ConfigError(
                "quantize.layers: empty, so nothing would be quantized; list the modules to quantize and "
                "their weight dtype, e.g. quantize.layers=[{module_name: '*', weights: {dtype: int8}}] "
                "(dtypes int8, fp8_e4m3fn, fp8_e5m2)"
            )
        device = _device(section)
        if backend == "modelopt.onnx":
            from model.quantize.onnx_pipeline import modelopt_onnx_quantize

            modelopt_onnx_quantize(spec, results_dir, status, device)
            return 0
        model, source = load_float_model(spec)
        eval_spec, eval_source = evaluation_spec(spec)
        print(f"Scoring the float model on {eval_source} ...", flush=True)
        before = score(eval_spec, model, device)
        size_before = weights_bytes(model)
        started = time.time()
        done = (_modelopt if backend == "modelopt.pytorch" else _torchao)(spec, model, device)
        model = done.get("model", model)
        seconds = time.time() - started
        print(f"Quantized in {seconds:.1f} s; scoring the quantized model ...", flush=True)
        after = score(eval_spec, model, device)
        size_after = weights_bytes(model)
        recipe = {
            "backend": backend,
            "mode": section["mode"],
            "algorithm": section["algorithm"],
            "source_checkpoint": source,
            **done["recipe"],
        }
        path = results_dir / QUANTIZED_FILE.format(backend=backend)
        save_quantized(path, model, recipe, spec, done.get("modelopt_state"))
        results = {
            "quantized_checkpoint": str(path),
            "source_checkpoint": source,
            "backend": backend,
            "mode": section["mode"],
            "algorithm": section["algorithm"],
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
