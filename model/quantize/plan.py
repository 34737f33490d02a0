"""Which modules of a network get which weight dtype: ``quantize.layers`` and ``quantize.skip_names``.

A pattern (``fnmatch``, case-sensitive, ``*`` wildcards) matches a module when it matches the module's
qualified name, the name of one of its parents (``decoder`` covers everything inside the decoder) or its
class name (``Linear``, ``Conv2d``). Entries apply in order, a later entry overriding an earlier one;
dtype ``native`` takes the matched modules out again; ``skip_names`` removes modules last.

Only modules with a weight matrix are quantized: ``nn.Linear`` and ``nn.Conv2d``. The output
projection of ``nn.MultiheadAttention`` stays in float (that module reads the weight directly).
Activation dtypes are recorded but not applied by weight-only PTQ (as in TAO's torchao backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from torch import nn

from model.quantize.combinations import normalize_dtype

__all__ = ["LayerChoice", "QuantPlan", "build_plan"]

QUANTIZABLE = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class LayerChoice:
    module: str
    kind: str  # "Linear" or "Conv2d"
    weights: str  # int8, fp8_e4m3fn, fp8_e5m2


@dataclass
class QuantPlan:
    """The modules to quantize, and what matched but stays in float (and why)."""

    layers: list[LayerChoice] = field(default_factory=list)
    kept_float: dict[str, str] = field(default_factory=dict)
    ignored_activations: list[str] = field(default_factory=list)

    def to_records(self) -> list[dict[str, str]]:
        return [{"module": c.module, "kind": c.kind, "weights": c.weights} for c in self.layers]

    @classmethod
    def from_records(cls, records: list[Mapping[str, Any]]) -> QuantPlan:
        return cls(layers=[LayerChoice(str(r["module"]), str(r["kind"]), str(r["weights"])) for r in records])

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for choice in self.layers:
            counts[f"{choice.kind} {choice.weights}"] = counts.get(f"{choice.kind} {choice.weights}", 0) + 1
        text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no modules"
        return f"quantized weights of {text}"


def _names(qualname: str) -> list[str]:
    parts = qualname.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _matches(pattern: str, qualname: str, module: nn.Module) -> bool:
    if fnmatchcase(type(module).__name__, pattern):
        return True
    return any(fnmatchcase(name, pattern) for name in _names(qualname))


def _attention_projections(model: nn.Module) -> set[str]:
    names = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            names.add(f"{name}.out_proj" if name else "out_proj")
    return names


def build_plan(model: nn.Module, section: Mapping[str, Any]) -> QuantPlan:
    """The plan for ``model`` from a resolved ``quantize`` section (validated beforehand)."""
    plan = QuantPlan()
    candidates = [(n, m) for n, m in model.named_modules() if n and isinstance(m, QUANTIZABLE)]
    attention = _attention_projections(model)
    chosen: dict[str, str] = {}
    for i, layer in enumerate(section.get("layers") or []):
        pattern = str(layer.get("module_name") or "")
        weights = layer.get("weights") or {}
        activations = layer.get("activations") or {}
        if normalize_dtype(activations.get("dtype")) != "native":
            plan.ignored_activations.append(f"quantize.layers[{i}].activations ({pattern!r})")
        if not weights:
            continue
        dtype = normalize_dtype(weights.get("dtype"))
        for name, module in candidates:
            if not _matches(pattern, name, module):
                continue
            if dtype == "native":
                chosen.pop(name, None)
            elif name in attention:
                plan.kept_float[name] = "the output projection of nn.MultiheadAttention"
            else:
                chosen[name] = dtype
    for pattern in section.get("skip_names") or []:
        for name, module in candidates:
            if name in chosen and _matches(str(pattern), name, module):
                del chosen[name]
                plan.kept_float[name] = f"quantize.skip_names {pattern!r}"
    for name, module in candidates:
        if name in chosen:
            kind = "Conv2d" if isinstance(module, nn.Conv2d) else "Linear"
            plan.layers.append(LayerChoice(name, kind, chosen[name]))
    return plan
