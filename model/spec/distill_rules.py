"""Cross-key rules of ``distill.*`` that the schema alone cannot express (checked for `rtdetr distill`).

The bindings' own rules live in :func:`model.distill.bindings.binding_problems` (criterion names,
TAO's IOU-uses-srcs/dsrcs rule, weights); module names are checked later against the built networks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["distill_problems"]


def distill_problems(spec: Mapping[str, Any], action: str) -> list[str]:
    if action != "distill":
        return []
    from model.distill.bindings import binding_problems

    distill = spec.get("distill")
    if not isinstance(distill, Mapping):
        return [
            "distill: missing; `rtdetr distill` needs distill.teacher, distill.pretrained_teacher_model_path "
            "and distill.bindings"
        ]
    problems = binding_problems(distill.get("bindings"))
    teacher = distill.get("teacher")
    if not isinstance(teacher, Mapping):
        problems.append(
            "distill.teacher: missing; give the teacher's model.* keys (backbone, hidden_dim, ...)"
        )
    return problems
