"""Checkpoint files: reading them, writing them, loading them into a network.

- ``state_dict``: read any checkpoint file (``weights_only``) and find its tensors.
- ``weights``: copy a file's tensors into a network or a backbone, with a ``LoadReport``.
- ``training_files``: the training checkpoints in TAO's layout (``model_epoch_NNN.pth``, the
  ``rtdetr_model_latest.pth`` link): save, find, prune, read.
- ``trained_model``: ``<action>.checkpoint`` loaded into the network the spec builds, refused when
  it does not fit.
- ``quantized_file``: the quantized checkpoint of ``rtdetr quantize``: save, recognise, load.

Importing this package imports nothing else (no torch): each name is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "read_checkpoint": "state_dict",
    "extract_state_dict": "state_dict",
    "COMPUTED_BUFFERS": "weights",
    "LoadReport": "weights",
    "load_backbone_weights": "weights",
    "load_state_into": "weights",
    "load_weights": "weights",
    "EPOCH_GLOB": "training_files",
    "LATEST": "training_files",
    "epoch_of": "training_files",
    "epoch_path": "training_files",
    "find_latest": "training_files",
    "prune_checkpoints": "training_files",
    "read_training_checkpoint": "training_files",
    "save_checkpoint": "training_files",
    "check_no_deployed_model": "trained_model",
    "checkpoint_num_classes": "trained_model",
    "load_trained_model": "trained_model",
    "is_quantized_checkpoint": "quantized_file",
    "load_if_quantized": "quantized_file",
    "load_quantized_model": "quantized_file",
    "quantized_state": "quantized_file",
    "save_quantized": "quantized_file",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'model.checkpoints' has no attribute {name!r}")
    return getattr(importlib.import_module(f"model.checkpoints.{home}"), name)
