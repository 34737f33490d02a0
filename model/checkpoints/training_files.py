"""Training checkpoints in TAO's layout: ``model_epoch_000.pth`` ... and the link ``rtdetr_model_latest.pth``.

A checkpoint is a dict: ``model`` (state_dict), ``ema`` (``{"module": state_dict, "updates": n}`` when EMA
is on), ``optimizer``, ``scheduler``, ``epoch`` (0-based, the epoch just finished), ``global_step``,
``spec`` (the resolved spec), ``metrics`` (that epoch's kpi) and ``tao_model: "rtdetr"``. Files are
written to a temporary name and renamed, so a killed process never leaves a truncated checkpoint.
Importing this module does not import torch (``rtdetr --parent`` reads the layout before any model
is built).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from model.errors import CheckpointError

__all__ = [
    "EPOCH_GLOB",
    "LATEST",
    "epoch_of",
    "epoch_path",
    "find_latest",
    "prune_checkpoints",
    "read_training_checkpoint",
    "save_checkpoint",
]

LATEST = "rtdetr_model_latest.pth"
"""The link to the newest checkpoint of a train results folder."""
EPOCH_GLOB = "model_epoch_*.pth"
"""Every epoch checkpoint of a train results folder."""
_EPOCH = re.compile(r"model_epoch_(\d+)\.pth$")


def epoch_path(folder: str | Path, epoch: int) -> Path:
    return Path(folder) / f"model_epoch_{epoch:03d}.pth"


def save_checkpoint(folder: str | Path, epoch: int, payload: dict[str, Any]) -> Path:
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = epoch_path(folder, epoch)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({**payload, "epoch": epoch, "tao_model": "rtdetr"}, tmp)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: no partial file, the checkpoints before it stay as they were
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CheckpointError(
            f"{path}: could not be saved ({exc.strerror or exc}); the checkpoints before it are kept"
        ) from None
    link = folder / LATEST
    tmp_link = folder / f".{LATEST}.{os.getpid()}.tmp"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(path.name, tmp_link)
    os.replace(tmp_link, link)
    return path


def find_latest(folder: str | Path) -> Path | None:
    """The newest checkpoint in a results folder: the latest link, else the highest epoch file."""
    folder = Path(folder)
    link = folder / LATEST
    if link.exists():
        return link.resolve()
    epochs = sorted(folder.glob(EPOCH_GLOB), key=lambda p: epoch_of(p) or -1)
    return epochs[-1] if epochs else None


def epoch_of(path: str | Path) -> int | None:
    match = _EPOCH.search(str(path))
    return int(match.group(1)) if match else None


def read_training_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """Load one of our training checkpoints (weights_only), or raise CheckpointError naming the file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    if path.suffix not in (".pth", ".pt", ".ckpt", ".tlt"):
        raise CheckpointError(f"{what} {path}: expected a .pth checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(
            f"{what} {path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(data, dict) or "model" not in data:
        raise CheckpointError(
            f"{what} {path} is not a training checkpoint of this tool (no 'model' entry); "
            f"use train.pretrained_model_path for other weights"
        )
    return data


def prune_checkpoints(folder: str | Path, keep: set[int]) -> list[Path]:
    """Delete epoch checkpoints not in ``keep`` (never the one the latest link points at)."""
    folder = Path(folder)
    latest = (folder / LATEST).resolve() if (folder / LATEST).exists() else None
    removed = []
    for path in folder.glob(EPOCH_GLOB):
        epoch = epoch_of(path)
        if epoch is not None and epoch not in keep and path.resolve() != latest:
            path.unlink()
            removed.append(path)
    return removed
