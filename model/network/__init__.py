"""The RT-DETR network, one concept per module; ``rtdetr`` only composes them.

- ``arch_settings``: TAO's ``model.*`` keys -> the constructor arguments of every part.
- ``backbones/``: PResNet-vd, timm (ConvNeXt, EfficientViT) and FAN backbones by TAO name.
- ``encoder``: the hybrid encoder (AIFI transformer layer + CCFM fusion, ``rep_blocks``, ``layers``).
- ``decoder``: the deformable transformer decoder (``deform_attn``), with ``denoising`` queries.
- ``matcher``, ``criterion``: Hungarian matching and the VFL + L1 + GIoU training loss.
- ``postprocess``: top-k detections in image pixels; ``boxes``: box format and IoU helpers.
- ``rtdetr``: ``RTDETR`` and the builders ``build_model``, ``build_criterion``, ``build_postprocessor``.

Importing this package imports torch (the builders); ``model.config`` and ``model.spec`` do not.
"""

from __future__ import annotations

from model.network.rtdetr import RTDETR, build_criterion, build_model, build_postprocessor

__all__ = ["RTDETR", "build_criterion", "build_model", "build_postprocessor"]
