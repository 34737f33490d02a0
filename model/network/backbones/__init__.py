"""Backbone factory: TAO backbone names -> a module with ``out_channels``/``out_strides``.

``resnet_18/34/50/101`` build the official PResNet-vd with the official freezing (R18/R34:
nothing frozen, trainable BatchNorm; R50/R101: stem frozen, FrozenBatchNorm2d everywhere).
``convnext_*`` and ``efficientvit_*`` come from timm (``timm_backbone.py``, imported lazily);
``fan_*`` are TAO's hybrid FAN backbones (``fan.py``).
"""

from __future__ import annotations

import logging

from torch import nn

from model.errors import ConfigError

__all__ = ["RESNET_SETTINGS", "build_backbone"]

log = logging.getLogger(__name__)

# depth, freeze_at, freeze_norm: the official rtdetrv2_r{18,34,50,101}vd configs.
RESNET_SETTINGS: dict[str, tuple[int, int, bool]] = {
    "resnet_18": (18, -1, False),
    "resnet_34": (34, -1, False),
    "resnet_50": (50, 0, True),
    "resnet_101": (101, 0, True),
}
TIMM_PREFIXES = ("convnext_", "efficientvit_")


def build_backbone(
    name: str,
    return_idx: list[int],
    pretrained_path: str = "",
    train_backbone: bool = True,
) -> nn.Module:
    """The backbone called ``name`` (TAO's ``model.backbone``), returning stages ``return_idx``."""
    if name in RESNET_SETTINGS:
        from model.network.backbones.presnet import PResNet

        depth, freeze_at, freeze_norm = RESNET_SETTINGS[name]
        backbone: nn.Module = PResNet(
            depth, variant="d", return_idx=return_idx, freeze_at=freeze_at, freeze_norm=freeze_norm
        )
        if pretrained_path:
            from model.checkpoints.weights import load_backbone_weights

            report = load_backbone_weights(backbone, pretrained_path)
            log.info("%s", report.summary())
    elif name.startswith(TIMM_PREFIXES):
        from model.network.backbones.timm_backbone import TimmBackbone

        # freeze=True also keeps the backbone's BatchNorm statistics fixed, not only its weights
        backbone = TimmBackbone(
            name,
            return_idx=list(return_idx),
            pretrained_path=pretrained_path or "",
            freeze=not train_backbone,
        )
    elif name.startswith("fan_"):
        from model.network.backbones.fan import FANBackbone

        # freeze=True also keeps BatchNorm statistics fixed and drop path off, not only the weights
        backbone = FANBackbone(
            name,
            return_idx=list(return_idx),
            pretrained_path=pretrained_path or "",
            freeze=not train_backbone,
        )
    else:
        raise ConfigError(
            f"model.backbone: unknown backbone {name!r}; use one of {sorted(RESNET_SETTINGS)}, "
            "convnext_tiny/small/base/large/xlarge, efficientvit_b0..b3/l0..l3 or fan_tiny/small/base/large."
        )
    if not train_backbone:
        backbone.requires_grad_(False)
    return backbone
