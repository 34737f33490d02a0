"""The distillation criteria of ``distill.bindings[*].criterion``: L1, L2, KL and IOU.

``L1``/``L2``/``KL`` compare a student module's output with the teacher module's output. An output
may be a tensor, a list/tuple of tensors (one per feature level: the losses are summed over the
levels, as TAO's ``FeatureMapCriterion`` does) or a dict (the tensors under the keys both sides
have; for ``KL`` only the ``*logits`` keys). Shapes must match: a clear :class:`ShapeMismatch`
names both shapes otherwise.

- ``L1``: mean absolute difference; ``L2``: mean squared difference (MSE).
- ``KL``: KL(teacher || student) of the softmax over the channel dimension (dim 1 of a 4-D feature
  map, the last dim otherwise), with temperature :data:`KL_TEMPERATURE` (scaled by T^2), summed
  over the channels and averaged over every other position.
- ``IOU``: TAO's query-guided feature imitation (see :func:`iou_feature_loss`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from model.network.boxes import box_iou, cxcywh_to_xyxy

__all__ = [
    "KL_TEMPERATURE",
    "ShapeMismatch",
    "feature_loss",
    "flatten_outputs",
    "iou_feature_loss",
    "kl_divergence",
    "query_weights",
]

KL_TEMPERATURE = 1.0
_MASK_FLOOR = 1e-2  # TAO's lower bound of the imitation mask before it is scaled to max 1


class ShapeMismatch(ValueError):
    """Student and teacher outputs of one binding cannot be compared."""


def flatten_outputs(value: Any, path: str = "") -> list[tuple[str, Tensor]]:
    """``(where, tensor)`` pairs of a module output: a tensor, a list/tuple of them, or a dict."""
    if isinstance(value, Tensor):
        return [(path or "output", value)]
    if isinstance(value, Mapping):
        pairs: list[tuple[str, Tensor]] = []
        for key, item in value.items():
            if isinstance(item, Tensor):  # top-level tensors only: aux/denoising entries differ by mode
                pairs.append((f"{path}[{key!r}]", item))
        return pairs
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        pairs = []
        for i, item in enumerate(value):
            pairs += flatten_outputs(item, f"{path}[{i}]")
        return pairs
    return []


def _pairs(criterion: str, student: Any, teacher: Any) -> list[tuple[str, Tensor, Tensor]]:
    if isinstance(student, Mapping) and isinstance(teacher, Mapping):
        keys = [
            k
            for k in student
            if k in teacher and isinstance(student[k], Tensor) and isinstance(teacher[k], Tensor)
        ]
        if criterion == "KL":
            keys = [k for k in keys if str(k).endswith("logits")]
        if not keys:
            raise ShapeMismatch(
                f"the outputs are dicts with no tensor entry in common{' ending in logits' if criterion == 'KL' else ''} "
                f"(student {sorted(map(str, student))}, teacher {sorted(map(str, teacher))})"
            )
        return [(f"[{k!r}]", student[k], teacher[k]) for k in keys]
    s, t = flatten_outputs(student), flatten_outputs(teacher)
    if not s or not t:
        raise ShapeMismatch("the module returned no tensor to compare")
    if len(s) != len(t):
        raise ShapeMismatch(f"the student gives {len(s)} tensors and the teacher {len(t)}")
    return [(where, a, b) for (where, a), (_, b) in zip(s, t)]


def _check_shapes(pairs: list[tuple[str, Tensor, Tensor]]) -> None:
    for where, s, t in pairs:
        if s.shape != t.shape:
            raise ShapeMismatch(
                f"output{where if where != 'output' else ''} has shape {list(s.shape)} in the student and "
                f"{list(t.shape)} in the teacher"
            )


def kl_divergence(student: Tensor, teacher: Tensor, temperature: float = KL_TEMPERATURE) -> Tensor:
    dim = 1 if student.dim() == 4 else -1
    log_s = F.log_softmax(student / temperature, dim=dim)
    log_t = F.log_softmax(teacher / temperature, dim=dim)
    return (log_t.exp() * (log_t - log_s)).sum(dim=dim).mean() * temperature**2


def feature_loss(criterion: str, student: Any, teacher: Any) -> Tensor:
    """``L1``, ``L2`` or ``KL`` between two module outputs, summed over their tensors."""
    pairs = _pairs(criterion, student, teacher)
    _check_shapes(pairs)
    total: Tensor | None = None
    for _, s, t in pairs:
        s, t = s.float(), t.detach().float()
        if criterion == "L1":
            loss = F.l1_loss(s, t)
        elif criterion == "L2":
            loss = F.mse_loss(s, t)
        elif criterion == "KL":
            loss = kl_divergence(s, t)
        else:
            raise ValueError(f"criterion {criterion!r} is not a feature criterion")
        total = loss if total is None else total + loss
    assert total is not None
    return total


@torch.no_grad()
def query_weights(scores: Tensor, boxes: Tensor, targets: Sequence[Mapping[str, Tensor]]) -> Tensor:
    """Per teacher query: its best class probability times its best IoU with a ground-truth box
    (the probability alone for an image without boxes). ``scores`` (B, Q), ``boxes`` (B, Q, 4) cxcywh."""
    weights = []
    for i, target in enumerate(targets):
        weight = scores[i]
        gt = target["boxes"]
        if len(gt):
            iou, _ = box_iou(cxcywh_to_xyxy(boxes[i].float()), cxcywh_to_xyxy(gt.float()))
            weight = weight * iou.max(dim=-1).values
        weights.append(weight)
    return torch.stack(weights)


def iou_feature_loss(
    student_maps: Sequence[Tensor],
    teacher_maps: Sequence[Tensor],
    queries: Tensor,
    weights: Tensor,
) -> Tensor:
    """TAO's IOU criterion: MSE between ``mask * student`` and ``mask * teacher`` on each level.

    The mask says where the teacher's objects are: the cosine similarity of every teacher object
    query (``queries`` (B, Q, C)) with every position of the teacher's map, summed over the
    queries weighted by :func:`query_weights`, floored at 0.01 and scaled to a maximum of 1 per
    image. It depends on the teacher alone, so the student is pulled towards the teacher's
    features where the teacher sees well-localised objects.
    """
    if len(student_maps) != len(teacher_maps):
        raise ShapeMismatch(
            f"the student gives {len(student_maps)} feature maps and the teacher {len(teacher_maps)}"
        )
    total: Tensor | None = None
    q = F.normalize(queries.detach().float(), dim=-1)
    for level, (s, t) in enumerate(zip(student_maps, teacher_maps)):
        if s.shape != t.shape:
            raise ShapeMismatch(
                f"feature map {level} has shape {list(s.shape)} in the student and {list(t.shape)} in the teacher"
            )
        if t.dim() != 4 or t.shape[1] != q.shape[-1]:
            raise ShapeMismatch(
                f"feature map {level} of shape {list(t.shape)} cannot be compared with the teacher's "
                f"{q.shape[-1]}-wide object queries (IOU needs maps as wide as model.hidden_dim)"
            )
        s, t = s.float(), t.detach().float()
        with torch.no_grad():
            similarity = torch.einsum("bqc,bchw->bqhw", q, F.normalize(t, dim=1))
            mask = torch.einsum("bqhw,bq->bhw", similarity, weights.float()).clamp(min=_MASK_FLOOR)
            mask = (mask / mask.flatten(1).amax(dim=1)[:, None, None]).unsqueeze(1)
        loss = F.mse_loss(mask * s, mask * t)
        total = loss if total is None else total + loss
    if total is None:
        raise ShapeMismatch("no feature map to compare")
    return total
