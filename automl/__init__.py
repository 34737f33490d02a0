"""AutoML orchestration for RT-DETR: search spaces, backends, launcher, tracking, pipeline.

This package never imports torch or ``model``: it talks to the model by launching
``rtdetr`` processes and reading the files they write.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
