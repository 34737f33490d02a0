"""Package list for setuptools; everything else is in pyproject.toml.

The top-level ``schemas/``, ``references/`` and ``configs/`` folders are shipped as the data packages
``rtdetr_automl_files.<folder>`` (read with ``importlib.resources`` by ``automl/project_files.py``
and ``model/paths.py``), in the wheel as in the editable install. pyproject.toml cannot list found
packages and mapped ones together, hence this file.
"""

from setuptools import find_namespace_packages, setup

DATA_PACKAGES = {f"rtdetr_automl_files.{name}": name for name in ("schemas", "references", "configs")}

setup(
    packages=[
        *find_namespace_packages(
            include=["automl", "automl.*", "model", "model.*"], exclude=["*.__pycache__"]
        ),
        *DATA_PACKAGES,
    ],
    package_dir=DATA_PACKAGES,
)
