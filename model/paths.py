"""Where the project's generated and hand-kept files live (``schemas/``, ``references/``, ``configs/``)."""

from __future__ import annotations

import os
from pathlib import Path

from model.errors import ModelError


def repo_root() -> Path:
    """The folder holding ``schemas/`` and ``references/`` (the source checkout, installed editable).

    ``RTDETR_AUTOML_ROOT`` points elsewhere when set.
    """
    env = os.environ.get("RTDETR_AUTOML_ROOT")
    root = Path(env) if env else Path(__file__).resolve().parent.parent
    if not (root / "references").is_dir():
        raise ModelError(
            f"cannot find the project's references/ folder under {root}; install the project from its "
            "source checkout (pip install -e .) or set RTDETR_AUTOML_ROOT to that checkout"
        )
    return root


def references_dir() -> Path:
    return repo_root() / "references"


def schemas_dir() -> Path:
    return repo_root() / "schemas"


def configs_dir() -> Path:
    return repo_root() / "configs"
