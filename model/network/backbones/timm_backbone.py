"""TAO's ConvNeXt and EfficientViT backbones, built from ``timm`` model definitions.

``model.backbone`` takes TAO's names (``convnext_tiny`` ... ``convnext_xlarge``, ``efficientvit_b0``
... ``efficientvit_b3``, ``efficientvit_l0`` ... ``efficientvit_l3``). ``model.return_interm_indices``
keeps TAO's meaning: stage ``i`` has stride ``4 * 2**i``, so ``[1, 2, 3]`` returns the maps at
strides 8, 16 and 32. The stage whose timm ``feature_info`` reduction equals that stride is taken, so
the mapping holds for every family whatever timm counts as its first feature.

The timm model keeps its own parameter names (``stem.*``, ``stages.N.*``), so a timm checkpoint loads
as is; Meta's original ConvNeXt checkpoints (``downsample_layers.*``, the ones TAO's backbones start
from) are renamed on load. Layers after the last returned stage and the classifier head are removed.
Nothing is ever downloaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from model.errors import CheckpointError, ConfigError

__all__ = ["NUM_STAGES", "TIMM_BACKBONES", "TimmBackbone", "stage_stride"]

logger = logging.getLogger(__name__)

# TAO backbone name -> timm model name.
TIMM_BACKBONES: dict[str, str] = {
    "convnext_tiny": "convnext_tiny",
    "convnext_small": "convnext_small",
    "convnext_base": "convnext_base",
    "convnext_large": "convnext_large",
    "convnext_xlarge": "convnext_xlarge",
    "efficientvit_b0": "efficientvit_b0",
    "efficientvit_b1": "efficientvit_b1",
    "efficientvit_b2": "efficientvit_b2",
    "efficientvit_b3": "efficientvit_b3",
    # timm registers no L0; TAO's L0 is L1's widths with depths (1, 1, 1, 4, 4), see _TIMM_ARGS.
    "efficientvit_l0": "efficientvit_l1",
    "efficientvit_l1": "efficientvit_l1",
    "efficientvit_l2": "efficientvit_l2",
    "efficientvit_l3": "efficientvit_l3",
}

# Constructor arguments that turn a timm definition into TAO's variant.
_TIMM_ARGS: dict[str, dict[str, Any]] = {
    "efficientvit_l0": {"depths": (1, 1, 1, 4, 4)},
}

NUM_STAGES = 4  # TAO stages 0..3 at strides 4, 8, 16, 32
_WRAPPER_KEYS = ("state_dict", "model", "module", "net")


def stage_stride(stage: int) -> int:
    """Stride of TAO stage ``stage`` (0 -> 4, 1 -> 8, 2 -> 16, 3 -> 32)."""
    return 4 * 2**stage


def _check_return_idx(return_idx: Any) -> list[int]:
    valid = list(range(NUM_STAGES))
    ok = (
        isinstance(return_idx, (list, tuple))
        and len(return_idx) > 0
        and all(isinstance(i, int) and not isinstance(i, bool) and i in valid for i in return_idx)
        and list(return_idx) == sorted(set(return_idx))
    )
    if not ok:
        raise ConfigError(
            f"model.return_interm_indices: {return_idx!r} is not usable; give increasing stage indices "
            f"from {valid} (stage i has stride 4*2**i), e.g. [1, 2, 3] for strides 8/16/32"
        )
    return list(return_idx)


def _timm_name(name: str) -> str:
    if name not in TIMM_BACKBONES:
        raise ConfigError(
            f"model.backbone: {name!r} is not a timm-built backbone; supported: {', '.join(TIMM_BACKBONES)}"
        )
    timm_name = TIMM_BACKBONES[name]
    if not timm.is_model(timm_name):
        raise ConfigError(
            f"model.backbone: {name!r} needs timm model {timm_name!r}, which the installed timm "
            f"{timm.__version__} does not provide; upgrade timm or choose another backbone"
        )
    return timm_name


class TimmBackbone(nn.Module):
    """A timm ConvNeXt / EfficientViT returning the feature maps of the stages in ``return_idx``.

    Args:
        name: TAO backbone name (a key of ``TIMM_BACKBONES``).
        return_idx: TAO stage indices (``model.return_interm_indices``), e.g. ``[1, 2, 3]``.
        pretrained_path: optional checkpoint (``model.pretrained_backbone_path``) loaded non-strictly.
        freeze: freeze every parameter and keep normalization statistics fixed (``train_backbone: false``).

    Raises:
        ConfigError: unknown name, a name the installed timm lacks, or unusable ``return_idx``.
        CheckpointError: ``pretrained_path`` is unreadable or shares no tensor with the backbone.
    """

    def __init__(self, name: str, return_idx: list[int], pretrained_path: str = "", freeze: bool = False):
        super().__init__()
        timm_name = _timm_name(name)
        return_idx = _check_return_idx(return_idx)
        self.name = name
        self.return_idx = return_idx
        body = timm.create_model(timm_name, pretrained=False, num_classes=0, **_TIMM_ARGS.get(name, {}))
        reductions = [int(info["reduction"]) for info in body.feature_info]
        indices = []
        for stage in return_idx:
            if stage_stride(stage) not in reductions:
                raise ConfigError(
                    f"model.return_interm_indices: stage {stage} (stride {stage_stride(stage)}) has no feature "
                    f"map in timm {timm_name!r} (its strides are {reductions}); choose stages among "
                    f"those strides"
                )
            indices.append(reductions.index(stage_stride(stage)))
        body.prune_intermediate_layers(indices, prune_norm=True, prune_head=True)
        self.body = body
        self._indices = indices
        self.out_channels: list[int] = [int(body.feature_info[i]["num_chs"]) for i in indices]
        self.out_strides: list[int] = [reductions[i] for i in indices]
        self.frozen = freeze
        if pretrained_path:
            self.load_pretrained(pretrained_path)
        if freeze:
            for p in self.parameters():
                p.requires_grad_(False)
            self.body.eval()

    def train(self, mode: bool = True) -> TimmBackbone:
        """A frozen backbone keeps its normalization layers in eval mode."""
        super().train(mode)
        if self.frozen:
            self.body.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body.forward_intermediates(x, indices=self._indices, intermediates_only=True)

    def load_pretrained(self, path: str) -> dict[str, list[str]]:
        """Load matching tensors from ``path``; returns ``{"loaded", "skipped", "missing"}`` key lists."""
        state = _read_state_dict(path)
        own = self.body.state_dict()
        state = _match_keys(state, set(own))
        loaded, skipped = {}, []
        for key, value in state.items():
            if key not in own:
                continue
            if tuple(value.shape) != tuple(own[key].shape):
                skipped.append(f"{key} {tuple(value.shape)} != {tuple(own[key].shape)}")
                continue
            loaded[key] = value
        # BatchNorm step counters match any model; they alone do not make a fitting checkpoint.
        if not any(not k.endswith("num_batches_tracked") for k in loaded):
            loaded = {}
        if not loaded and skipped:
            raise CheckpointError(
                f"model.pretrained_backbone_path: {path} does not fit backbone {self.name!r}: all "
                f"{len(skipped)} matching tensors differ in shape (e.g. {skipped[0]}); it is probably "
                f"another model size, give a {self.name} checkpoint"
            )
        if not loaded:
            sample = ", ".join(list(state)[:3])
            raise CheckpointError(
                f"model.pretrained_backbone_path: {path} shares no tensor with backbone {self.name!r} "
                f"(its keys look like: {sample}); give a {self.name} checkpoint in timm's or Meta's format"
            )
        self.body.load_state_dict(loaded, strict=False)
        missing = [k for k in own if k not in loaded]
        logger.info(
            "Loaded %d/%d backbone tensors from %s (%d skipped for shape, %d missing)",
            len(loaded),
            len(own),
            path,
            len(skipped),
            len(missing),
        )
        for line in skipped:
            logger.warning("Backbone tensor skipped (shape differs): %s", line)
        return {"loaded": list(loaded), "skipped": skipped, "missing": missing}


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"model.pretrained_backbone_path: {path} does not exist or is not a file")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(file), device="cpu")
        else:
            obj = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = (str(exc).splitlines() or [""])[0]
        raise CheckpointError(
            f"model.pretrained_backbone_path: {path} is not a readable PyTorch checkpoint "
            f"({type(exc).__name__}: {reason}); give a .pth/.pt state_dict or a .safetensors file"
        ) from exc
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"model.pretrained_backbone_path: {path} holds a {type(obj).__name__}, not a state_dict; "
            f"give a file saved from module.state_dict() (optionally under 'state_dict' or 'model')"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"model.pretrained_backbone_path: {path} contains no tensors")
    return tensors


def _meta_convnext_key(key: str) -> str:
    """Rename a key of Meta's ConvNeXt release (the layout TAO's ConvNeXt uses) to timm's layout."""
    key = re.sub(r"(^|\.)downsample_layers\.0\.", r"\1stem.", key)
    key = re.sub(r"(^|\.)downsample_layers\.(\d+)\.", r"\1stages.\2.downsample.", key)
    key = re.sub(r"(^|\.)stages\.(\d+)\.(\d+)\.", r"\1stages.\2.blocks.\3.", key)
    return (
        key.replace(".dwconv.", ".conv_dw.")
        .replace(".pwconv1.", ".mlp.fc1.")
        .replace(".pwconv2.", ".mlp.fc2.")
    )


def _match_keys(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    """Rename checkpoint keys to the backbone's: known layouts, then the most common key prefix."""
    if any("downsample_layers." in k or ".dwconv." in k for k in state):
        state = {_meta_convnext_key(k): v for k, v in state.items()}
    # timm features_only models flatten the first level: ``stages_0.`` -> ``stages.0.``.
    state = {re.sub(r"(^|\.)(stem|stages)_(\w)", r"\1\2.\3", k): v for k, v in state.items()}
    votes: dict[str, int] = {}
    for key in state:
        parts = key.split(".")
        for cut in range(len(parts)):
            if ".".join(parts[cut:]) in own:
                prefix = ".".join(parts[:cut])
                votes[prefix] = votes.get(prefix, 0) + 1
                break
    if not votes:
        return state
    best = max(votes, key=lambda p: (votes[p], -len(p)))
    if not best:
        return state
    cut = len(best) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(best + ".")}
