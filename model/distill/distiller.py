"""The frozen teacher and the per-binding losses the trainer adds to the detection loss.

:class:`Distiller` is the trainer's ``extra_losses`` hook: called after each student forward pass
with the batch, it runs the teacher (eval mode, no gradients, same precision as the student) and
returns ``{kpi name: weighted loss}`` for every binding. Features come from forward hooks
(:mod:`model.distill.capture`), so neither network changes for distillation and the saved student
is a plain RT-DETR.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from model.config.defaults import spec_section
from model.distill.bindings import Binding
from model.distill.capture import ModuleTaps, check_names
from model.distill.criteria import ShapeMismatch, feature_loss, iou_feature_loss, query_weights
from model.engine.validation import autocast_for
from model.errors import CheckpointError, ConfigError

__all__ = [
    "Distiller",
    "build_teacher",
    "copy_encoder_decoder",
    "digest",
    "freeze",
    "probe_batch",
    "teacher_spec",
]

_COMPUTED = ("anchors", "valid_mask", "num_points_scale")


def teacher_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec whose ``model`` is ``distill.teacher`` (same dataset, classes and sizes)."""
    out = copy.deepcopy(dict(spec))
    out["model"] = copy.deepcopy(dict(spec["distill"]["teacher"]))
    return out


def build_teacher(spec: Mapping[str, Any]) -> nn.Module:
    """``distill.teacher`` with ``distill.pretrained_teacher_model_path`` loaded, frozen, in eval mode."""
    from model.checkpoints.weights import load_weights
    from model.network.rtdetr import build_model

    t_spec = teacher_spec(spec)
    # the teacher's weights come from its checkpoint; never fetch its backbone's separately
    t_spec["model"]["pretrained_backbone_path"] = ""
    teacher = build_model(t_spec)
    path = str(spec["distill"].get("pretrained_teacher_model_path") or "")
    if not path or path == "???":
        raise ConfigError(
            "distill.pretrained_teacher_model_path: not set; give the checkpoint of the trained teacher "
            "(a model_epoch_NNN.pth of `rtdetr train` with the model described by distill.teacher)"
        )
    report = load_weights(teacher, path)
    if report.missing or report.skipped or report.unexpected:
        bad = report.missing[:3] + [k for k, _, _ in report.skipped[:3]] + report.unexpected[:3]
        raise CheckpointError(
            f"distill.pretrained_teacher_model_path: {path} does not fit the teacher described by "
            f"distill.teacher ({len(report.missing)} tensors missing in the file, {len(report.skipped)} of "
            f"another shape, {len(report.unexpected)} not in the teacher, e.g. {bad}); set distill.teacher "
            f"to the model that checkpoint was trained with "
            f"(backbone, hidden_dim, feat_channels, enc_layers, dec_layers, num_queries...)"
        )
    freeze(teacher)
    return teacher


def freeze(net: nn.Module) -> None:
    net.eval()
    for param in net.parameters():
        param.requires_grad_(False)


def digest(net: nn.Module) -> str:
    """A short fingerprint of every tensor of ``net`` (to prove the teacher never changes)."""
    h = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def copy_encoder_decoder(teacher: nn.Module, student: nn.Module) -> int:
    """``model.load_teacher_enc_dec``: the teacher's encoder and decoder tensors whose name and shape
    the student shares are copied into the student; returns how many were copied."""
    own = student.state_dict()
    picked = {
        k: v
        for k, v in teacher.state_dict().items()
        if k.split(".", 1)[0] in ("encoder", "decoder")
        and not k.endswith(_COMPUTED)
        and k in own
        and own[k].shape == v.shape
    }
    student.load_state_dict(picked, strict=False)
    return len(picked)


class Distiller:
    """``extra_losses(images, targets, outputs) -> {kpi name: loss}`` for the trainer."""

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        bindings: Sequence[Binding],
        *,
        coef: float = 1.0,
        precision: str = "fp32",
    ):
        check_names(
            student,
            [(f"distill.bindings[{b.index}].student_module_name", b.student) for b in bindings],
            "student (model.*)",
        )
        check_names(
            teacher,
            [(f"distill.bindings[{b.index}].teacher_module_name", b.teacher) for b in bindings],
            "teacher (distill.teacher.*)",
        )
        self.student = student
        self.teacher = teacher
        self.bindings = list(bindings)
        self.coef = float(coef)
        self.precision = precision
        self.student_taps = ModuleTaps(student, [b.student for b in self.bindings])
        teacher_names = [b.teacher for b in self.bindings]
        self.query_tap = ""
        if any(b.criterion == "IOU" for b in self.bindings):
            # the teacher's object queries: the output of the last decoder layer it runs in eval mode
            layers = teacher.decoder.decoder
            self.query_tap = f"decoder.decoder.layers.{layers.eval_idx}"
            teacher_names.append(self.query_tap)
        self.teacher_taps = ModuleTaps(teacher, teacher_names)

    @property
    def names(self) -> list[str]:
        return [b.kpi_name for b in self.bindings]

    def _teacher_forward(self, images: Tensor) -> dict[str, Any]:
        self.teacher.eval()
        with torch.no_grad(), autocast_for(self.precision, images.device):
            return self.teacher(images)

    def __call__(
        self, images: Tensor, targets: list[dict[str, Tensor]], outputs: Mapping[str, Any] | None = None
    ) -> dict[str, Tensor]:
        teacher_out = self._teacher_forward(images)
        weights = None
        if self.query_tap:
            scores = teacher_out["pred_logits"].float().sigmoid().max(dim=-1).values
            weights = query_weights(scores, teacher_out["pred_boxes"], targets)
        losses: dict[str, Tensor] = {}
        try:
            for b in self.bindings:
                student, teacher = self.student_taps.get(b.student), self.teacher_taps.get(b.teacher)
                try:
                    if b.criterion == "IOU":
                        loss = iou_feature_loss(
                            _maps(student), _maps(teacher), self.teacher_taps.get(self.query_tap), weights
                        )
                    else:
                        loss = feature_loss(b.criterion, student, teacher)
                except ShapeMismatch as exc:
                    raise ConfigError(
                        f"distill.bindings[{b.index}] ({b.student} -> {b.teacher}, {b.criterion}): {exc}; "
                        f"bind modules whose outputs have the same shape in both networks (e.g. make "
                        f"model.hidden_dim/feat_channels equal to distill.teacher's for srcs/dsrcs), or pick "
                        f"other modules"
                    ) from None
                losses[b.kpi_name] = loss * (b.weight * self.coef)
        finally:
            self.student_taps.clear()
            self.teacher_taps.clear()
        return losses

    def check(self, images: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, float]:
        """One forward pass of both networks on a batch, before training: every binding's outputs
        exist and fit (shape errors are ConfigErrors now, not at step 1). The student runs in
        training mode without gradients; its BatchNorm statistics are restored afterwards."""
        saved = {k: v.detach().clone() for k, v in self.student.state_dict().items()}
        mode = self.student.training
        try:
            self.student.train()
            with torch.no_grad(), autocast_for(self.precision, images.device):
                outputs = self.student(images, targets)
            with torch.no_grad():
                return {k: float(v) for k, v in self(images, targets, outputs).items()}
        finally:
            self.student.load_state_dict(saved)
            self.student.train(mode)

    def close(self) -> None:
        self.student_taps.remove()
        self.teacher_taps.remove()


def _maps(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    return [v for v in value if isinstance(v, Tensor)]


def probe_batch(
    spec: Mapping[str, Any], device: torch.device, batch: int = 2
) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """A synthetic batch at ``dataset.augmentation.train_spatial_size`` (one box per image)."""
    dataset = spec_section(spec, "dataset")
    height, width = [int(v) for v in dataset["augmentation"]["train_spatial_size"]][:2]
    num_classes = int(dataset["num_classes"])
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, int(height), int(width), generator=generator).to(device)
    targets = [
        {
            "labels": torch.tensor([i % max(1, num_classes)], device=device),
            "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.4]], device=device),
        }
        for i in range(batch)
    ]
    return images, targets
