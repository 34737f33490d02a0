"""Static PTQ with NVIDIA ModelOpt (``quantize.backend: modelopt.pytorch``, ``mode: static_ptq``,
``algorithm: max``, ``awq_lite`` or ``awq_full``).

``modelopt.torch.quantization.quantize`` inserts weight and input quantizers into every supported module
(Linear, Conv2d, ...), the calibration loop runs ``dataset.quant_calibration_data_sources`` through the
network, and ``max`` calibration sets each quantizer's range. The result is fake-quantized: weights
and activations are rounded to int8 (weights per output channel) or fp8 e4m3 in every call, but the
tensors stay float, so the checkpoint is not smaller; a TensorRT engine built from its export is
where the speed and size gain is. Runs on a CPU.

AWQ (activation-aware weight quantization) is a method for ``nn.Linear`` layers, run by ModelOpt with
the same int8 / fp8 quantizers (no block quantization needed):

- ``awq_lite``: the calibration loop runs twice: first to collect each Linear input's per-channel mean
  magnitude (and every input quantizer's range), then to search, per Linear, the exponent ``alpha`` in
  0, 0.1, ..., 1 of the channel scale ``s = act^alpha / weight^(1-alpha)`` whose quantized output is
  closest to the float output. The weight is multiplied by ``s`` (stored that way) and the input by
  ``1/s`` (the input quantizer's ``pre_quant_scale``, saved with the quantizers), then the weight range
  is recalibrated. Linear layers whose forward never runs (the output projection of
  ``nn.MultiheadAttention``, which reads its weight directly) keep max calibration with a scale of 1.
- ``awq_full``: ``awq_lite``, then ModelOpt's clip search, which ModelOpt applies only to
  block-quantized weights (its int4 recipes); with per-channel int8 or per-tensor fp8 weights it has
  nothing to clip, so ``awq_full`` gives the ``awq_lite`` weights and scales (its extra calibration pass
  only re-measures the input ranges: they differed by at most 2.4e-7 on the tiny test model).
- ``Conv2d`` (and any other quantized module) is not AWQ-scaled: its weight and input quantizers get
  ``max`` calibration from the first pass, exactly as with ``algorithm: max``.

``quantize.layers`` becomes ModelOpt's ordered ``quant_cfg`` list: everything off, then per entry the
``weight_quantizer`` / ``input_quantizer`` of the matched modules (a pattern is a module name with
``*``, covering the modules inside it, or an ``nn`` layer type such as ``Conv2d``); dtype ``native``
turns them off again, as does ``quantize.skip_names``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from model.errors import ConfigError
from model.quantize.combinations import normalize_dtype

__all__ = ["build_quant_cfg", "modelopt_quantize", "modelopt_restore", "modelopt_state", "modelopt_version"]


def _modelopt():
    try:
        import modelopt
        import modelopt.torch.opt as mto
        import modelopt.torch.quantization as mtq
    except ImportError as exc:
        raise ConfigError(
            f"quantize.backend=modelopt.pytorch needs NVIDIA ModelOpt, which failed to import ({exc}); "
            "install it with `pip install nvidia-modelopt` (it runs on a CPU too), or use "
            "quantize.backend=torchao with quantize.mode=weight_only_ptq"
        ) from None
    return modelopt, mto, mtq


def modelopt_version() -> str:
    return str(_modelopt()[0].__version__)


def _tensor_cfg(dtype: object, weights: bool) -> dict[str, Any]:
    value = normalize_dtype(dtype)
    if value == "native":
        return {"enable": False}
    if value == "int8":
        return {"cfg": {"num_bits": 8, "axis": 0 if weights else None}}
    if value == "fp8_e4m3fn":
        return {"cfg": {"num_bits": (4, 3), "axis": None}}
    raise ConfigError(
        f"quantize: dtype {dtype!r} is not supported by modelopt.pytorch; use int8 or fp8_e4m3fn"
    )


def _targets(pattern: str, quantizer: str) -> list[dict[str, Any]]:
    """ModelOpt selectors for the ``quantizer`` of the modules ``pattern`` names."""
    layer_type = getattr(nn, pattern, None)
    if isinstance(layer_type, type) and issubclass(layer_type, nn.Module):
        return [{"quantizer_name": f"*{quantizer}", "parent_class": f"nn.{pattern}"}]
    return [{"quantizer_name": f"{pattern}.{quantizer}"}, {"quantizer_name": f"{pattern}.*{quantizer}"}]


def build_quant_cfg(section: Mapping[str, Any]) -> dict[str, Any]:
    """ModelOpt's quantization config from a resolved ``quantize`` section."""
    entries: list[dict[str, Any]] = [{"quantizer_name": "*", "enable": False}]
    for layer in section.get("layers") or []:
        pattern = str(layer.get("module_name") or "")
        for part, quantizer in (("weights", "weight_quantizer"), ("activations", "input_quantizer")):
            tensor = layer.get(part) or {}
            setting = _tensor_cfg(tensor.get("dtype"), part == "weights")
            entries += [{**target, **setting} for target in _targets(pattern, quantizer)]
    for pattern in section.get("skip_names") or []:
        for quantizer in ("weight_quantizer", "input_quantizer"):
            entries += [{**target, "enable": False} for target in _targets(str(pattern), quantizer)]
    return {"quant_cfg": entries, "algorithm": str(section.get("algorithm") or "max")}


def modelopt_quantize(
    model: nn.Module, section: Mapping[str, Any], batches, device: torch.device
) -> nn.Module:
    """Insert the quantizers and calibrate them on ``batches`` (an iterable of ``(images, targets)``)."""
    _, _, mtq = _modelopt()

    def forward_loop(network: nn.Module) -> None:
        with torch.no_grad():
            for images, _targets in batches:
                network(images.to(device))

    model.eval()
    return mtq.quantize(model, build_quant_cfg(section), forward_loop=forward_loop)


def modelopt_state(model: nn.Module) -> dict[str, Any]:
    return _modelopt()[1].modelopt_state(model)


def modelopt_restore(model: nn.Module, state: Mapping[str, Any]) -> nn.Module:
    """``model`` (built from the spec) with the recorded quantizers inserted, ready for the state_dict."""
    return _modelopt()[1].restore_from_modelopt_state(model, dict(state))


def count_enabled_quantizers(model: nn.Module) -> dict[str, int]:
    """Enabled weight and input quantizers, and (``awq_scaled``) inputs that carry an AWQ scale."""
    counts = {"weight": 0, "input": 0, "awq_scaled": 0}
    for name, module in model.named_modules():
        if name.endswith("weight_quantizer") and getattr(module, "is_enabled", False):
            counts["weight"] += 1
        elif name.endswith("input_quantizer") and getattr(module, "is_enabled", False):
            counts["input"] += 1
        scale = getattr(module, "pre_quant_scale", None) if name.endswith("input_quantizer") else None
        if scale is not None and not bool(torch.all(scale == 1)):
            counts["awq_scaled"] += 1
    return counts
