"""TAO ``model.*`` keys -> the constructor arguments of backbone, encoder, decoder, loss, post-processor.

The mapping follows TAO's ``build_nn_model.py``: ``hidden_dim`` is the decoder width,
``nheads``/``dim_feedforward``/``dropout_ratio``/``enc_act``/``expansion``/``depth_mult``/
``pe_temperature``/``enc_layers`` configure the encoder, and the decoder keeps the official
defaults where TAO has no key (8 heads, FFN 1024, 4 sampling points per level, label noise 0.5,
box noise 1.0). The encoder width is ``feat_channels`` (the decoder's input channels, which
must equal the encoder's output width), so the official R101 (encoder 384, decoder 256) is
expressible; TAO itself needs ``feat_channels == [hidden_dim] * levels``, which builds the same.
Missing keys take their defaults from ``model.config`` (TAO's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model.config.defaults import default_of, section_defaults
from model.errors import ConfigError

__all__ = [
    "BOX_NOISE_SCALE",
    "DECODER_FFN",
    "DECODER_NHEAD",
    "DECODER_POINTS_PER_LEVEL",
    "DEFAULT_EVAL_SIZE",
    "DEFAULT_NUM_CLASSES",
    "LABEL_NOISE_RATIO",
    "MATCHER_ALPHA",
    "MATCHER_GAMMA",
    "TAO_MODEL_DEFAULTS",
    "ModelSettings",
]

TAO_MODEL_DEFAULTS: dict[str, Any] = section_defaults("model")
"""Every ``model.*`` key's default, from ``model.config.model.RTModelConfig``."""
DEFAULT_NUM_CLASSES: int = default_of("dataset.num_classes")
DEFAULT_EVAL_SIZE: list[int] = default_of("dataset.augmentation.eval_spatial_size")

# Official decoder settings without a TAO key.
DECODER_NHEAD = 8
DECODER_FFN = 1024
DECODER_POINTS_PER_LEVEL = 4
LABEL_NOISE_RATIO = 0.5
BOX_NOISE_SCALE = 1.0
MATCHER_ALPHA = 0.25
MATCHER_GAMMA = 2.0


def _as_mapping(obj: Any, where: str) -> Mapping[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "__dict__"):
        return vars(obj)
    raise ConfigError(f"{where}: expected a mapping of spec keys, got {type(obj).__name__}.")


@dataclass
class ModelSettings:
    """Everything the network, the criterion and the post-processor need, from one spec."""

    model: dict[str, Any]
    num_classes: int = DEFAULT_NUM_CLASSES
    eval_spatial_size: list[int] = field(default_factory=lambda: list(DEFAULT_EVAL_SIZE))
    remap_mscoco_category: bool = False

    @classmethod
    def from_spec(cls, spec: Any) -> ModelSettings:
        root = _as_mapping(spec, "spec")
        model_section = _as_mapping(root.get("model"), "model")
        dataset = _as_mapping(root.get("dataset"), "dataset")
        augmentation = _as_mapping(dataset.get("augmentation"), "dataset.augmentation")
        merged = section_defaults("model")
        merged.update({k: v for k, v in model_section.items() if v is not None})
        eval_size = augmentation.get("eval_spatial_size") or DEFAULT_EVAL_SIZE
        settings = cls(
            model=merged,
            num_classes=int(dataset.get("num_classes") or DEFAULT_NUM_CLASSES),
            eval_spatial_size=[int(v) for v in eval_size],
            remap_mscoco_category=bool(
                dataset.get("remap_mscoco_category", default_of("dataset.remap_mscoco_category"))
            ),
        )
        settings.check()
        return settings

    def __getitem__(self, key: str) -> Any:
        return self.model[key]

    def check(self) -> None:
        m = self.model
        problems = []
        if len(self.eval_spatial_size) != 2 or any(v % 32 for v in self.eval_spatial_size):
            problems.append(
                f"dataset.augmentation.eval_spatial_size: {self.eval_spatial_size} must be [height, width], "
                "both multiples of 32."
            )
        if len(m["return_interm_indices"]) != len(m["feat_channels"]):
            problems.append(
                f"model.return_interm_indices {list(m['return_interm_indices'])} and model.feat_channels "
                f"{list(m['feat_channels'])} must have the same length (one encoder level per backbone output)."
            )
        if len(set(m["feat_channels"])) != 1:
            problems.append(
                f"model.feat_channels: {list(m['feat_channels'])}; the hybrid encoder outputs one width for "
                "every level, so all entries must be equal."
            )
        if int(m["num_feature_levels"]) < len(m["feat_channels"]):
            problems.append(
                f"model.num_feature_levels={m['num_feature_levels']} must be at least "
                f"len(model.feat_channels)={len(m['feat_channels'])}."
            )
        frozen_fm = m.get("frozen_fm") or {}
        if isinstance(frozen_fm, Mapping) and frozen_fm.get("enabled"):
            problems.append(
                "model.frozen_fm.enabled: true is not supported yet (RADIO frozen foundation models); "
                "set it to false."
            )
        if self.num_classes < 1:
            problems.append(f"dataset.num_classes: {self.num_classes} must be at least 1.")
        if problems:
            raise ConfigError(" ".join(problems))

    # --- per-part keyword arguments -------------------------------------------------------
    def encoder_kwargs(self, in_channels: list[int], in_strides: list[int]) -> dict[str, Any]:
        m = self.model
        return {
            "in_channels": list(in_channels),
            "feat_strides": [int(s) for s in m["feat_strides"]],
            "hidden_dim": int(m["feat_channels"][0]),
            "nhead": int(m["nheads"]),
            "dim_feedforward": int(m["dim_feedforward"]),
            "dropout": float(m["dropout_ratio"]),
            "enc_act": str(m["enc_act"]),
            "use_encoder_idx": [int(i) for i in m["use_encoder_idx"]],
            "num_encoder_layers": int(m["enc_layers"]),
            "pe_temperature": float(m["pe_temperature"]),
            "expansion": float(m["expansion"]),
            "depth_mult": float(m["depth_mult"]),
            "act": str(m["act"]),
            "eval_spatial_size": list(self.eval_spatial_size),
        }

    def decoder_kwargs(self) -> dict[str, Any]:
        m = self.model
        levels = int(m["num_feature_levels"])
        return {
            "num_classes": self.num_classes,
            "hidden_dim": int(m["hidden_dim"]),
            "num_queries": int(m["num_queries"]),
            "feat_channels": [int(c) for c in m["feat_channels"]],
            "feat_strides": [int(s) for s in m["feat_strides"]],
            "num_levels": levels,
            "num_points": [DECODER_POINTS_PER_LEVEL] * levels,
            "nhead": DECODER_NHEAD,
            "num_layers": int(m["dec_layers"]),
            "dim_feedforward": DECODER_FFN,
            "num_denoising": int(m["dn_number"]),
            "label_noise_ratio": LABEL_NOISE_RATIO,
            "box_noise_scale": BOX_NOISE_SCALE,
            "eval_spatial_size": list(self.eval_spatial_size),
            "eval_idx": int(m["eval_idx"]),
            "aux_loss": bool(m["aux_loss"]),
        }
