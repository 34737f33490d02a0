"""``distill.bindings``: which student output learns from which teacher output, with what loss.

Pure Python (no torch), so the spec check (``model/spec/distill_rules.py``) and the action share it.
Each binding becomes a :class:`Binding` with the name its loss is logged under in status.json
(``distill_<student module>``; ``_<criterion>`` and then an index are appended when names repeat).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model.config.distill import DistillationBindingConfig

__all__ = [
    "CRITERIA",
    "FEATURE_MAPS",
    "Binding",
    "binding_problems",
    "normalise_module_name",
    "parse_bindings",
]

CRITERIA = ("L1", "L2", "KL", "IOU")
# TAO's names for the feature maps the IOU criterion compares (see model/distill/__init__.py).
FEATURE_MAPS = ("srcs", "dsrcs")
# TAO's student and teacher are wrapped in a module whose model is ``.model``; accept those names.
_TAO_PREFIX = "model."

_DEFAULT_WEIGHT = DistillationBindingConfig().weight  # a binding without a weight


@dataclass(frozen=True)
class Binding:
    index: int
    student: str  # module name in the student (``srcs``/``dsrcs`` or a ``named_modules()`` name)
    teacher: str
    criterion: str  # L1 | L2 | KL | IOU
    weight: float
    kpi_name: str  # status.json kpi key of this binding's (weighted) loss


def normalise_module_name(name: str) -> str:
    """``model.network.encoder`` (TAO's wrapped name) -> ``encoder``; surrounding spaces dropped."""
    name = name.strip()
    while name.startswith(_TAO_PREFIX):
        name = name[len(_TAO_PREFIX) :]
    return name


def binding_problems(bindings: Any, key: str = "distill.bindings") -> list[str]:
    """Every problem of a ``distill.bindings`` value that needs no model (TAO's rules included)."""
    if not isinstance(bindings, Sequence) or isinstance(bindings, (str, bytes)):
        return [f"{key}: expected a list of bindings, got {bindings!r}"]
    if not bindings:
        return [
            f"{key}: empty; give at least one binding such as "
            "{student_module_name: srcs, teacher_module_name: srcs, criterion: IOU, weight: 1.0}"
        ]
    problems: list[str] = []
    for i, item in enumerate(bindings):
        at = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(
                f"{at}: expected a mapping with student_module_name, teacher_module_name, "
                f"criterion and weight, got {item!r}"
            )
            continue
        names = {}
        for side in ("student_module_name", "teacher_module_name"):
            value = item.get(side)
            if not isinstance(value, str) or not normalise_module_name(value):
                problems.append(
                    f"{at}.{side}: {value!r} is not a module name; use srcs, dsrcs or a module "
                    f"name such as backbone, encoder or decoder"
                )
            else:
                names[side] = normalise_module_name(value)
        criterion = item.get("criterion")
        if criterion not in CRITERIA:
            hint = ""
            if isinstance(criterion, str) and criterion.upper() in CRITERIA:
                hint = f" (did you mean {criterion.upper()}?)"
            elif isinstance(criterion, str) and criterion.upper() in ("MSE", "L2LOSS"):
                hint = " (did you mean L2?)"
            problems.append(
                f"{at}.criterion: {criterion!r} is not supported{hint}; choose one of {', '.join(CRITERIA)}"
            )
        weight = item.get("weight", _DEFAULT_WEIGHT)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:  # NaN too
            problems.append(f"{at}.weight: {weight!r} must be a number >= 0")
        if criterion == "IOU" and len(names) == 2:
            student, teacher = names["student_module_name"], names["teacher_module_name"]
            if student not in FEATURE_MAPS:
                problems.append(
                    f"{at}.student_module_name: {student!r} cannot use criterion IOU; IOU bindings compare "
                    f"the encoder feature maps and must name srcs or dsrcs on both sides (TAO's rule); "
                    f"use L1, L2 or KL for other modules"
                )
            elif student != teacher:
                problems.append(
                    f"{at}.teacher_module_name: {teacher!r} differs from student_module_name {student!r}; "
                    f"an IOU binding must name the same feature maps (srcs or dsrcs) on both sides"
                )
    return problems


def parse_bindings(bindings: Sequence[Mapping[str, Any]]) -> list[Binding]:
    """Bindings of a spec that passed :func:`binding_problems`, with unique kpi names."""
    raw = [
        (
            normalise_module_name(str(b["student_module_name"])),
            normalise_module_name(str(b["teacher_module_name"])),
            str(b["criterion"]),
            float(b.get("weight", _DEFAULT_WEIGHT)),
        )
        for b in bindings
    ]
    base = [_slug(student) for student, _, _, _ in raw]
    names = [f"{n}_{r[2]}" if base.count(n) > 1 else n for n, r in zip(base, raw)]
    names = [f"{n}_{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    return [
        Binding(i, student, teacher, criterion, weight, f"distill_{names[i]}")
        for i, (student, teacher, criterion, weight) in enumerate(raw)
    ]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", name).strip("_") or "binding"
