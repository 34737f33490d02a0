"""Shared fixtures of the automl tests: our generated train schema and TAO's default train spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.space.schema_rows import load_schema


@pytest.fixture(scope="module")
def schema(root: Path) -> dict[str, Any]:
    return load_schema(root / "schemas" / "train.schema.json")


@pytest.fixture
def spec(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "references" / "spec_template_train.yaml").read_text(encoding="utf-8"))
