"""Helpers shared by the model tests: the parity fixture, its fill rule and TAO-key specs."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "rtdetr-parity" / "rtdetrv2_r18vd"


def r18_spec(num_classes: int = 80, remap_mscoco_category: bool = True) -> dict[str, Any]:
    """The official rtdetrv2_r18vd_120e_coco configuration written with TAO keys."""
    return {
        "model": {
            "backbone": "resnet_18",
            "return_interm_indices": [1, 2, 3],
            "feat_strides": [8, 16, 32],
            "feat_channels": [256, 256, 256],
            "hidden_dim": 256,
            "nheads": 8,
            "dim_feedforward": 1024,
            "dropout_ratio": 0.0,
            "enc_layers": 1,
            "use_encoder_idx": [2],
            "expansion": 0.5,
            "depth_mult": 1,
            "enc_act": "gelu",
            "act": "silu",
            "num_feature_levels": 3,
            "dec_layers": 3,
            "num_queries": 300,
            "num_select": 300,
            "dn_number": 100,
            "eval_idx": -1,
        },
        "dataset": {
            "num_classes": num_classes,
            "remap_mscoco_category": remap_mscoco_category,
            "augmentation": {"eval_spatial_size": [640, 640]},
        },
    }


def fixture_keys() -> list[dict[str, Any]]:
    return json.loads((FIXTURE_DIR / "model.json").read_text())["keys"]


def fixture_json() -> dict[str, Any]:
    return json.loads((FIXTURE_DIR / "model.json").read_text())


def fill_value(key: str, shape: list[int]) -> torch.Tensor:
    """The fixture README's deterministic value for one state_dict entry."""
    rs = np.random.RandomState(zlib.crc32(key.encode("utf-8")))
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith("running_var"):
        values = rs.uniform(0.5, 1.5, size=shape)
    elif key.endswith("running_mean"):
        values = rs.normal(0.0, 0.1, size=shape)
    elif len(shape) >= 2:
        values = rs.normal(0.0, 1 / np.sqrt(np.prod(shape[1:])), size=shape)
    elif key.endswith(".weight"):
        values = rs.uniform(0.5, 1.5, size=shape)
    else:
        values = rs.normal(0.0, 0.02, size=shape)
    return torch.from_numpy(np.asarray(values, dtype=np.float32))


def official_state_dict(module_state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The refilled official state_dict; ``filled: false`` buffers come from ``module_state``."""
    state: dict[str, torch.Tensor] = {}
    for entry in fixture_keys():
        key = entry["key"]
        if entry["filled"]:
            state[key] = fill_value(key, entry["shape"])
        elif module_state is not None:
            state[key] = module_state[key].clone()
    return state
