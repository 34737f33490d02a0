"""The committed schemas/, manifest and spec templates are what ``rtdetr schemas`` generates."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from model.errors import SpecError
from model.schema import ACTIONS, build_schema, generate, spec_template

REPO = Path(__file__).resolve().parents[2]


def test_committed_files_are_fresh():
    stale = generate(REPO, check=True)
    assert stale == [], f"generated files are stale, run `rtdetr schemas`: {stale}"


def _copy_generated(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    shutil.copytree(REPO / "references", tmp_path / "references")
    return tmp_path


def test_modified_and_missing_files_are_reported_then_regenerated(tmp_path):
    root = _copy_generated(tmp_path)
    schema = root / "schemas" / "train.schema.json"
    data = json.loads(schema.read_text())
    data["properties"]["train"]["properties"]["num_epochs"]["default"] = 99
    schema.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (root / "references" / "spec_template_export.yaml").unlink()

    assert generate(root, check=True) == [
        "schemas/train.schema.json",
        "references/spec_template_export.yaml",
    ]
    # check=True only reports: nothing was written
    assert not (root / "references" / "spec_template_export.yaml").exists()

    written = generate(root)
    assert written == ["schemas/train.schema.json", "references/spec_template_export.yaml"]
    assert generate(root, check=True) == []
    assert generate(root) == []


def test_generate_into_an_empty_folder_writes_every_file(tmp_path):
    written = generate(tmp_path)
    assert len(written) == 2 * len(ACTIONS) + 1
    assert "schemas/manifest.json" in written
    assert (tmp_path / "references" / "spec_template_gen_trt_engine.yaml").is_file()


@pytest.mark.parametrize("action", ACTIONS)
def test_every_template_is_exactly_the_schema_default(action):
    template = yaml.safe_load((REPO / "references" / f"spec_template_{action}.yaml").read_text())
    schema = json.loads((REPO / "schemas" / f"{action}.schema.json").read_text())
    assert template == schema["default"]
    assert template == spec_template(action) == build_schema(action)["default"]


def test_templates_keep_section_order():
    text = (REPO / "references" / "spec_template_distill.yaml").read_text()
    tops = [line.split(":")[0] for line in text.splitlines() if line and not line[0].isspace()]
    assert tops == [
        "model_name",
        "encryption_key",
        "results_dir",
        "wandb",
        "model",
        "dataset",
        "train",
        "distill",
        "quantize",
    ]


def test_schema_json_layout_and_infinity():
    text = (REPO / "schemas" / "train.schema.json").read_text()
    data = json.loads(text)
    assert json.dumps(data, indent=2, sort_keys=True) + "\n" == text
    assert '"maximum": Infinity' in text
    assert data["properties"]["dataset"]["properties"]["batch_size"]["maximum"] == float("inf")


def test_unknown_action_names_the_choices():
    with pytest.raises(SpecError, match=r"unknown action 'tune'.*gen_trt_engine"):
        build_schema("tune")


def _resolves(props: dict, dotted: str) -> bool:
    node: dict = {"properties": props}
    for part in re.sub(r"\[\d+\]", "", dotted).split("."):
        if "properties" not in node:
            return node.get("type") in ("list", "collection")  # inside a free-form list or mapping
        if part not in node["properties"]:
            return False
        node = node["properties"][part]
    return True


def test_skill_info_points_at_real_templates_and_keys():
    info = yaml.safe_load((REPO / "references" / "skill_info.yaml").read_text())
    assert info["automl_enabled"] is True
    assert set(info["actions"]) == set(ACTIONS) == set(info["spec_templates"])
    for action, rel in info["spec_templates"].items():
        assert (REPO / "references" / rel).resolve() == REPO / "references" / f"spec_template_{action}.yaml"
    for action, entry in info["actions"].items():
        assert entry["command"] == f"rtdetr {action} -e {{config_path}}"
        props = build_schema(action)["properties"]
        keys = [
            *entry["inputs"],
            *entry["outputs"],
            *info["spec_params"][action],
            *info["data_sources"].get(action, {}),
        ]
        # TAO's skill lists export.onnx_file as a train output although the train schema filters export
        unknown = [
            k for k in keys if not _resolves(props, k) and not (k.startswith("export.") and action == "train")
        ]
        assert unknown == [], f"{action}: {unknown}"
    for short, dotted in info["spec_shorthand_keys"].items():
        head = dotted.split(".")[0]
        action = head if head in ACTIONS else "train"
        assert _resolves(build_schema(action)["properties"], dotted), short
