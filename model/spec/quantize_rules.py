"""Cross-key rules of the ``quantize`` section: backend/mode/algorithm/dtype combinations (the table in
``model/quantize/combinations.py``), dtype spellings, layer entries and the device."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from model.quantize.combinations import QUANT_DTYPES, combination_problems, normalize_dtype

__all__ = ["quantize_problems"]


def _dtype_problems(key: str, tensor: Any) -> list[str]:
    if tensor is None:
        return []
    if not isinstance(tensor, Mapping):
        return [f"{key}: expected a mapping with a dtype (e.g. {{dtype: int8}}), got {tensor!r}"]
    dtype = tensor.get("dtype")
    if dtype in (None, ""):
        return [f"{key}.dtype: required; choose one of {', '.join(QUANT_DTYPES)}"]
    if normalize_dtype(dtype) not in QUANT_DTYPES:
        return [
            f"{key}.dtype: {dtype!r} is not a quantization dtype; choose one of {', '.join(QUANT_DTYPES)} "
            f"(float8_e4m3fn and float8_e5m2 are accepted spellings of the fp8 ones)"
        ]
    return []


def quantize_problems(spec: Mapping[str, Any], action: str) -> list[str]:
    """Problems of ``spec['quantize']``; the layer list must be usable only when quantizing."""
    section = spec.get("quantize")
    if action != "quantize" or not isinstance(section, Mapping):
        return []
    problems: list[str] = []
    layers = section.get("layers")
    weight_dtypes: list[tuple[str, Any]] = []
    if not isinstance(layers, list):
        layers = []  # the schema check reports the type; an empty list (TAO's template) fails at run time
    for i, layer in enumerate(layers):
        key = f"quantize.layers[{i}]"
        if not isinstance(layer, Mapping):
            problems.append(f"{key}: expected a mapping with module_name and weights, got {layer!r}")
            continue
        name = layer.get("module_name")
        if not isinstance(name, str) or not name.strip():
            problems.append(
                f"{key}.module_name: required; a module name, a layer type (Linear, Conv2d) or a pattern "
                f"with * such as 'decoder.*'"
            )
        for part in ("weights", "activations"):
            problems += _dtype_problems(f"{key}.{part}", layer.get(part))
        weights = layer.get("weights")
        if isinstance(weights, Mapping) and weights.get("dtype"):
            weight_dtypes.append((f"{key}.weights.dtype", weights["dtype"]))
    skip = section.get("skip_names")
    if isinstance(skip, list):
        for i, name in enumerate(skip):
            if not isinstance(name, str) or not name.strip():
                problems.append(f"quantize.skip_names[{i}]: {name!r} is not a module name or pattern")
    backend = section.get("backend")
    problems += combination_problems(backend, section.get("mode"), section.get("algorithm"), weight_dtypes)
    if section.get("device") == "trt" and backend != "modelopt.onnx":
        problems.append(
            f"quantize.device: 'trt' is only for quantize.backend modelopt.onnx (got {backend!r}); use cpu "
            f"or cuda"
        )
    return problems
