"""Damaged files a repair replaces are moved aside, never deleted: ``<name>.<why>-<time>`` beside them."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["aside_path", "move_aside"]


def aside_path(path: Path, why: str) -> Path:
    """A free name beside ``path``: ``optuna.journal.torn-20261202-143000`` (``-1``, ``-2``, ... when taken)."""
    stem = f"{path.name}.{why}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = path.with_name(stem), 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{stem}-{n}")
    return candidate


def move_aside(path: Path, why: str) -> Path:
    """Rename ``path`` to a free :func:`aside_path`; returns where it went."""
    target = aside_path(path, why)
    os.replace(path, target)
    return target
