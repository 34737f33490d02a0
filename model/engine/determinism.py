"""``train.seed`` and ``train.cudnn``: the seeds of every random generator and cuDNN's switches."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

from model.config.defaults import with_defaults

__all__ = ["apply_cudnn", "seed_everything"]


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch with ``seed + rank``; a negative seed leaves them unseeded."""
    if seed < 0:
        return
    import numpy as np
    import torch

    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed + rank)


def apply_cudnn(cudnn: Mapping[str, Any] | None) -> None:
    """``train.cudnn.benchmark`` and ``deterministic`` (missing keys: their defaults)."""
    import torch

    cudnn = with_defaults(cudnn, "train.cudnn")
    torch.backends.cudnn.benchmark = bool(cudnn["benchmark"])
    if cudnn["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
