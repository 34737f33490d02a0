"""Where the automl side finds the project's files: ``schemas/``, ``references/`` and ``configs/``.

The three folders sit at the top of the source checkout and are shipped inside the wheel as the data
packages ``rtdetr_automl_files.schemas``, ``.references`` and ``.configs`` (pyproject.toml maps
them), so they are read with ``importlib.resources`` wherever the project is installed: from the
checkout (``pip install -e .``) or from site-packages (``pip install .``). ``RTDETR_AUTOML_ROOT``,
when set, names a folder holding the three instead.

``model/paths.py`` is the model side's twin (``automl/`` never imports ``model/``).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from automl.errors import AutomlError

__all__ = ["demo_spec_file", "schema_file", "skill_info_file", "spec_template_file"]

PACKAGE = "rtdetr_automl_files"
_CHECKOUT = Path(__file__).resolve().parent.parent


def _folder(name: str) -> Path:
    env = os.environ.get("RTDETR_AUTOML_ROOT")
    if env:
        return Path(env) / name
    try:
        found = resources.files(f"{PACKAGE}.{name}")
    except ModuleNotFoundError:  # an editable install made before the data packages existed
        found = _CHECKOUT / name
    path = Path(str(found))
    if not path.is_dir():
        raise AutomlError(
            f"cannot find the project's {name}/ folder (looked in {path}); reinstall the project "
            "(pip install . or pip install -e .) or set RTDETR_AUTOML_ROOT to a folder holding it"
        )
    return path


def schema_file(action: str = "train") -> Path:
    """``schemas/<action>.schema.json``: the schema the search space of ``action`` comes from."""
    return _folder("schemas") / f"{action}.schema.json"


def skill_info_file() -> Path:
    """``references/skill_info.yaml``: says whether AutoML is enabled for the model."""
    return _folder("references") / "skill_info.yaml"


def spec_template_file(action: str = "train") -> Path:
    """``references/spec_template_<action>.yaml``: the schema's defaults as a spec."""
    return _folder("references") / f"spec_template_{action}.yaml"


def demo_spec_file() -> Path:
    """``configs/demo.yaml``: the embedded default spec."""
    return _folder("configs") / "demo.yaml"
