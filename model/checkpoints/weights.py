"""Loading weights into a network: official RT-DETRv2 / v1 checkpoints, our own checkpoints,
bare state_dicts.

``load_weights`` is the one loader. It reads the file and finds its state_dict
(``model.checkpoints.state_dict``: ``ema.module``, then ``model``, then ``state_dict``, else the
file itself), strips DDP/compile prefixes, renames the v1 layout (``*_from_paddle.pth``:
``input_proj.N.0/1`` and ``enc_output.0/1``) to the v2 names, skips tensors whose shape differs
(another ``num_classes``) and reports what happened. Files are always read with
``weights_only=True``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from model.checkpoints.state_dict import extract_state_dict, read_checkpoint
from model.errors import CheckpointError

__all__ = [
    "COMPUTED_BUFFERS",
    "LoadReport",
    "load_backbone_weights",
    "load_state_into",
    "load_weights",
]

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Buffers the model derives from its settings (anchors and valid mask for eval_spatial_size, the
# per-level point scale): always kept as built, never read from a file (v1 files lack them and
# a file made for another eval size has other shapes).
COMPUTED_BUFFERS = re.compile(r"(^|\.)(anchors|valid_mask|num_points_scale)$")
_V1_RENAMES = [
    (re.compile(r"^(encoder\.input_proj\.\d+\.)0\."), r"\1conv."),
    (re.compile(r"^(encoder\.input_proj\.\d+\.)1\."), r"\1norm."),
    (re.compile(r"^(decoder\.enc_output\.)0\."), r"\1proj."),
    (re.compile(r"^(decoder\.enc_output\.)1\."), r"\1norm."),
]


@dataclass
class LoadReport:
    """What ``load_weights`` did: keys loaded, skipped (shape differs), missing and unexpected."""

    path: str
    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the console."""
        text = (
            f"Loaded {len(self.loaded)} tensors from {self.path} ({self.source}); "
            f"{len(self.skipped)} skipped for a different shape, {len(self.missing)} missing in the file, "
            f"{len(self.unexpected)} in the file but not in the model"
            f"{f', {len(self.computed)} computed buffers kept as built' if self.computed else ''}."
        )
        if self.skipped:
            shown = ", ".join(f"{k} {list(c)} vs model {list(m)}" for k, c, m in self.skipped[:6])
            more = f" and {len(self.skipped) - 6} more" if len(self.skipped) > 6 else ""
            text += f" Skipped (kept the model's initial values): {shown}{more}."
        if self.missing:
            text += f" Missing: {', '.join(self.missing[:6])}{' ...' if len(self.missing) > 6 else ''}."
        if self.unexpected:
            text += (
                f" Unexpected: {', '.join(self.unexpected[:6])}{' ...' if len(self.unexpected) > 6 else ''}."
            )
        return text


def _strip_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def _normalise_keys(state: dict[str, Tensor], model_keys: set[str]) -> dict[str, Tensor]:
    """Strip wrapper prefixes (and ``model.`` when that makes keys match), rename v1 keys."""
    for prefix in _WRAPPER_PREFIXES:
        while any(k.startswith(prefix) for k in state):
            state = _strip_prefix(state, prefix)
    while any(k.startswith("model.") for k in state):
        stripped = _strip_prefix(state, "model.")
        if len(model_keys & set(stripped)) <= len(model_keys & set(state)):
            break
        state = stripped
    renamed: dict[str, Tensor] = {}
    for key, value in state.items():
        if key not in model_keys:
            for pattern, repl in _V1_RENAMES:
                candidate = pattern.sub(repl, key)
                if candidate != key and candidate in model_keys:
                    key = candidate
                    break
        renamed[key] = value
    return renamed


def load_state_into(module: nn.Module, state: dict[str, Tensor], path: str, source: str) -> LoadReport:
    """Copy every tensor whose name and shape match into ``module``; report the rest."""
    own = module.state_dict()
    state = _normalise_keys(state, set(own))
    report = LoadReport(path=path, source=source)
    to_load: dict[str, Tensor] = {}
    report.computed = [k for k in own if COMPUTED_BUFFERS.search(k)]
    for key, value in state.items():
        if key in report.computed:
            continue
        if key not in own:
            frozen_bn_counter = (
                key.endswith("num_batches_tracked")
                and key.replace("num_batches_tracked", "running_mean") in own
            )
            if not frozen_bn_counter:
                report.unexpected.append(key)
            continue
        if tuple(value.shape) != tuple(own[key].shape):
            report.skipped.append((key, tuple(value.shape), tuple(own[key].shape)))
            continue
        to_load[key] = value
        report.loaded.append(key)
    report.missing = [k for k in own if k not in state and k not in report.computed]
    module.load_state_dict(to_load, strict=False)
    return report


def load_weights(module: nn.Module, path: str | Path) -> LoadReport:
    """Load any supported checkpoint file into ``module`` (see the module docstring)."""
    obj = read_checkpoint(path)
    state, source = extract_state_dict(obj, str(path))
    report = load_state_into(module, state, str(path), source)
    if not report.loaded:
        raise CheckpointError(
            f"{str(path)!r} ({source}) has no tensor that fits this model: "
            f"{len(report.skipped)} differ in shape and {len(report.unexpected)} have unknown names "
            f"(e.g. {(report.unexpected or [k for k, _, _ in report.skipped])[:3]}). "
            "Is it a checkpoint of another architecture or backbone?"
        )
    return report


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> LoadReport:
    """Load backbone weights (official PResNet files, with or without a ``backbone.`` prefix)."""
    obj = read_checkpoint(path)
    state, source = extract_state_dict(obj, str(path))
    for prefix in _WRAPPER_PREFIXES:
        state = _strip_prefix(state, prefix)
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    report = load_state_into(backbone, state, str(path), source)
    if not report.loaded:
        raise CheckpointError(
            f"model.pretrained_backbone_path: {str(path)!r} has no tensor that fits the backbone "
            f"(first names in the file: {list(state)[:3]}); use the backbone's own pretrained weights."
        )
    return report
