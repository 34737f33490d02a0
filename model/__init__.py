"""RT-DETR: config, schemas, data, network and actions, usable without ``automl``.

Importing ``model`` does not import torch; ``build_model`` and ``load_weights`` load it on
first use, so spec validation and schema generation stay fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["build_model", "load_weights"]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from model.network.rtdetr import build_model

        return build_model
    if name == "load_weights":
        from model.checkpoints.weights import load_weights

        return load_weights
    raise AttributeError(f"module 'model' has no attribute {name!r}")
