"""NVIDIA's packaged RT-DETR files: their templates validate unchanged, their schemas read despite quirks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from model.spec import resolve_spec
from model.spec.messages import schema_problems
from model.spec.rules import _expand
from model.spec.skill_info import action_inputs
from model.spec.tao_schema import all_dotted_keys, child_properties, read_tao_schema, to_json_schema

TEMPLATE_ACTIONS = {
    "spec_template_train.yaml": "train",
    "spec_template_evaluate.yaml": "evaluate",
    "spec_template_inference.yaml": "inference",
    "spec_template_export.yaml": "export",
    "spec_template_quantize.yaml": "quantize",
    "spec_template_distill.yaml": "distill",
    "spec_template_deploy_evaluate.yaml": "evaluate",
    "spec_template_deploy_inference.yaml": "inference",
    "spec_template_deploy_gen_trt_engine.yaml": "gen_trt_engine",
}


def _fill_paths(template: dict, action: str, tmp_path: Path) -> list[str]:
    """Overrides that point every input of the action at a real file or folder."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    overrides = []
    for key, info in action_inputs(action).items():
        for concrete, _ in _expand(template, key):
            if info.get("type") == "folder":
                target = folder
            else:
                target = tmp_path / concrete.replace("[", "_").replace("]", "_")
                target.write_text("{}")
            overrides.append(f"{concrete}={target}")
    engine = (
        (template.get(action) or {}).get("trt_engine") if isinstance(template.get(action), dict) else None
    )
    if engine:
        target = tmp_path / "model.engine"
        target.write_bytes(b"engine")
        overrides.append(f"{action}.trt_engine={target}")
    return overrides


@pytest.mark.parametrize("name", sorted(TEMPLATE_ACTIONS))
def test_tao_template_validates_unchanged(name, tao_skill, tmp_path):
    path = tao_skill / "references" / name
    action = TEMPLATE_ACTIONS[name]
    template = yaml.safe_load(path.read_text())
    spec = resolve_spec(action, path, _fill_paths(template, action, tmp_path))
    for key, value in template.items():
        if not isinstance(value, dict):
            assert spec[key] == value or key == "results_dir"


def test_tao_schema_quirks_are_read(tao_skill):
    raw = (tao_skill / "schemas" / "train.schema.json").read_text()
    assert "Infinity" in raw  # not strict JSON
    schema = read_tao_schema(tao_skill / "schemas" / "train.schema.json")
    assert math.isinf(schema["properties"]["dataset"]["properties"]["batch_size"]["maximum"])
    assert isinstance(schema["properties"]["automl_disabled_parameters"], list)
    assert "automl_disabled_parameters" not in child_properties(schema)
    assert schema["properties"]["distill"] == {
        "automl_enabled": False,
        "description": schema["properties"]["distill"]["description"],
        "type": "collection",
    }
    evaluate = read_tao_schema(tao_skill / "schemas" / "evaluate.schema.json")
    assert evaluate["properties"]["evaluate"]["properties"]["checkpoint"]["default"] == "???"


def test_tao_schemas_convert_and_check_their_own_templates(tao_skill):
    actions = ["train", "evaluate", "inference", "export", "quantize", "distill"]
    schemas = [read_tao_schema(tao_skill / "schemas" / f"{a}.schema.json") for a in actions]
    js = to_json_schema(schemas)
    json.dumps(js)  # strict JSON Schema: no Infinity left
    keys = all_dotted_keys(js)
    assert "train.optim.lr" in keys and "dataset.train_data_sources[0].image_dir" in keys
    for action in actions:
        template = yaml.safe_load((tao_skill / "references" / f"spec_template_{action}.yaml").read_text())
        assert schema_problems(template, js, keys) == [], action
    bad = yaml.safe_load((tao_skill / "references" / "spec_template_train.yaml").read_text())
    bad["dataset"]["batch_size"] = "x"
    bad["model"]["backbone"] = "resnet_19"
    problems = schema_problems(bad, js, keys)
    assert any(p.startswith("dataset.batch_size: got 'x'") for p in problems)
    assert any(p.startswith("model.backbone: got 'resnet_19'") for p in problems)
