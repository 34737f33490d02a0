"""RT-DETR: backbone -> hybrid encoder -> decoder, and the builders that read a TAO spec."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from model.errors import ConfigError
from model.network.arch_settings import MATCHER_ALPHA, MATCHER_GAMMA, ModelSettings
from model.network.backbones import build_backbone
from model.network.decoder import RTDETRDecoder
from model.network.encoder import HybridEncoder

__all__ = ["RTDETR", "build_criterion", "build_model", "build_postprocessor"]


class RTDETR(nn.Module):
    """Composition only. ``forward(images, targets=None)``; ``deploy()`` fuses RepVGG blocks."""

    def __init__(self, backbone: nn.Module, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        # Registration order follows the official module (backbone, decoder, encoder), so
        # ``state_dict()`` lists keys in the order of official checkpoints.
        self.backbone = backbone
        self.decoder = decoder
        self.encoder = encoder

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None) -> dict[str, Any]:
        return self.decoder(self.encoder(self.backbone(images)), targets)

    def deploy(self) -> RTDETR:
        """Eval mode with every re-parameterisable block converted (for export and inference)."""
        self.eval()
        for module in self.modules():
            if hasattr(module, "convert_to_deploy"):
                module.convert_to_deploy()
        return self


def build_model(spec: Any) -> RTDETR:
    """The network described by ``spec['model']``, ``dataset.num_classes`` and ``eval_spatial_size``."""
    settings = ModelSettings.from_spec(spec)
    m = settings.model
    backbone = build_backbone(
        str(m["backbone"]),
        [int(i) for i in m["return_interm_indices"]],
        pretrained_path=str(m.get("pretrained_backbone_path") or ""),
        train_backbone=bool(m["train_backbone"]),
    )
    in_channels = list(backbone.out_channels)
    encoder = HybridEncoder(**settings.encoder_kwargs(in_channels, list(backbone.out_strides)))
    decoder = RTDETRDecoder(**settings.decoder_kwargs())
    return RTDETR(backbone, encoder, decoder)


def build_criterion(spec: Any) -> nn.Module:
    """The training loss (VFL or MAL + L1 + GIoU with aux, encoder and denoising terms) for ``spec``."""
    from model.network.criterion import RTDETRCriterion
    from model.network.matcher import HungarianMatcher

    settings = ModelSettings.from_spec(spec)
    m = settings.model
    matcher = HungarianMatcher(
        cost_class=float(m["class_cost"]),
        cost_bbox=float(m["bbox_cost"]),
        cost_giou=float(m["giou_cost"]),
        alpha=MATCHER_ALPHA,
        gamma=MATCHER_GAMMA,
    )
    losses = [str(x) for x in m["loss_types"]]
    unknown = [x for x in losses if x not in ("vfl", "focal", "boxes")]
    if unknown:
        raise ConfigError(f"model.loss_types: unknown loss {unknown}; use 'vfl' (or 'focal') and 'boxes'.")
    if str(m["class_loss"]) == "mal":
        losses = ["mal" if x == "vfl" else x for x in losses]
    weight_dict = {
        "loss_vfl": float(m["vfl_loss_coef"]),
        "loss_mal": float(m["vfl_loss_coef"]),
        "loss_focal": float(m["vfl_loss_coef"]),
        "loss_bbox": float(m["bbox_loss_coef"]),
        "loss_giou": float(m["giou_loss_coef"]),
    }
    return RTDETRCriterion(
        matcher,
        weight_dict=weight_dict,
        losses=losses,
        alpha=float(m["alpha"]),
        gamma=float(m["gamma"]),
        mal_gamma=float(m["mal_gamma"]),
        num_classes=settings.num_classes,
    )


def build_postprocessor(spec: Any) -> nn.Module:
    """Top-``model.num_select`` detections per image, boxes in original-image pixels."""
    from model.network.postprocess import RTDETRPostProcessor

    settings = ModelSettings.from_spec(spec)
    return RTDETRPostProcessor(
        num_classes=settings.num_classes,
        num_top_queries=int(settings.model["num_select"]),
        remap_mscoco_category=settings.remap_mscoco_category,
    )
