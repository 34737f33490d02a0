"""Reading a checkpoint file and finding its tensors: official RT-DETRv2 / v1 files, our own
training checkpoints, bare state_dicts.

``read_checkpoint`` is ``torch.load`` on the CPU with ``weights_only=True`` and errors that name the
file; ``extract_state_dict`` finds the state_dict inside what it read (``ema.module``, then
``model``, then ``state_dict``, else the top level).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from model.errors import CheckpointError

__all__ = ["extract_state_dict", "read_checkpoint"]


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` (CPU, weights only), with errors that name the file and what was expected."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint {str(file)!r} does not exist or is not a file; check the path.")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for non-checkpoint files
        raise CheckpointError(
            f"{str(file)!r} is not a readable PyTorch checkpoint (expected a .pth file written by torch.save "
            f"holding a state_dict, or a dict with 'model', 'ema' or 'state_dict'): {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, Tensor) for v in obj.values())


def extract_state_dict(obj: Any, path: str = "<checkpoint>") -> tuple[dict[str, Tensor], str]:
    """The tensors of a checkpoint object and where they were found (``ema.module``, ``model``, ...)."""
    if isinstance(obj, Mapping):
        ema = obj.get("ema")
        if isinstance(ema, Mapping) and _is_state_dict(ema.get("module")):
            return dict(ema["module"]), "ema.module"
        for key in ("model", "state_dict"):
            if _is_state_dict(obj.get(key)):
                return dict(obj[key]), key
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}
        if tensors and len(tensors) >= len(obj) // 2:
            return tensors, "state_dict at top level"
    raise CheckpointError(
        f"{path!r} holds no model weights: expected a state_dict (name -> tensor) or a dict with "
        f"'ema': {{'module': ...}}, 'model' or 'state_dict' (found {_describe(obj)})."
    )


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj.keys())[:8]
        return f"a dict with keys {keys}"
    return f"a {type(obj).__name__}"
