"""Flat rows from TAO-format schema files, quirks included."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from automl.errors import SettingError
from automl.space.schema_rows import load_schema, schema_rows


@pytest.fixture(scope="module")
def schema(root: Path) -> dict[str, Any]:
    return load_schema(root / "schemas" / "train.schema.json")


def test_rows_handle_tao_quirks(tao_skill: Path) -> None:
    schema = load_schema(tao_skill / "schemas" / "train.schema.json")
    assert isinstance(schema["properties"]["automl_disabled_parameters"], list)  # the stray list
    rows = {r.parameter: r for r in schema_rows(schema)}
    assert "automl_disabled_parameters" not in rows
    assert rows["dataset.batch_size"].valid_max == math.inf
    assert rows["model.dec_layers"].valid_max is None
    assert rows["model.num_queries"].parent_param is True
    assert rows["model.num_select"].depends_on == "model.num_queries"
    assert rows["train.optim.lr"].math_cond == "> 0.0"
    assert rows["distill"].value_type == "collection"  # no properties: its default is None
    assert rows["dataset.val_data_sources"].value_type == "collection"
    assert rows["model.backbone"].valid_options and "resnet_18" in rows["model.backbone"].valid_options
    assert rows["model.hidden_dim"].automl_enabled is False


def test_missing_values_become_none(schema: dict[str, Any]) -> None:
    rows = {r.parameter: r for r in schema_rows(schema)}
    assert rows["distill.pretrained_teacher_model_path"].default is None  # "???" in the file


def test_load_schema_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="not found"):
        load_schema(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(SettingError, match=r"bad\.json"):
        load_schema(bad)
