"""``model.config``: TAO metadata conventions of the field helpers and the section defaults."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from model.config import (
    MISSING,
    ExperimentConfig,
    RTDistillationConfig,
    RTModelConfig,
)
from model.config.fields import int_field, list_field, str_field
from model.schema import build_schema
from model.schema.convert import leaf_property


def test_importing_config_and_schema_does_not_import_torch():
    code = "import sys, model.config, model.schema; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_instances_do_not_share_mutable_defaults():
    a, b = ExperimentConfig(), ExperimentConfig()
    a.dataset.train_data_sources[0]["image_dir"] = "/data/a"
    a.model.return_interm_indices.append(4)
    assert b.dataset.train_data_sources == [{"image_dir": "", "json_file": ""}]
    assert b.model.return_interm_indices == [1, 2, 3]


def test_tao_defaults_of_the_sections():
    cfg = ExperimentConfig()
    assert (cfg.export.input_width, cfg.export.input_height) == (640, 640)
    assert cfg.evaluate.checkpoint == MISSING and cfg.evaluate.input_width is None
    assert cfg.gen_trt_engine.tensorrt.max_batch_size == 4
    assert cfg.distill is None
    teacher = RTDistillationConfig().teacher
    assert isinstance(teacher, RTModelConfig) and teacher == RTModelConfig()


def _meta(field_obj):
    @dataclasses.dataclass
    class Holder:
        x: object = field_obj

    return dataclasses.fields(Holder)[0].metadata


def test_helpers_follow_tao_type_and_automl_conventions():
    assert _meta(str_field("a", options=["a", "b"]))["value_type"] == "categorical"
    assert _meta(str_field("a"))["value_type"] == "string"
    assert _meta(int_field(3, options=[1, 3]))["value_type"] == "ordered_int"
    assert _meta(int_field(3))["automl_enabled"] == ""
    assert _meta(int_field(3, automl=True))["automl_enabled"] == "TRUE"
    assert _meta(list_field([1]))["automl_enabled"] == "FALSE"
    assert _meta(str_field("a", options=["a", "b"]))["valid_options"] == "a,b"


def test_option_weights_reach_the_schema_and_must_match_the_options():
    meta = _meta(str_field("cos", options=["cos", "step"], option_weights=[0.7, 0.3], automl=True))
    prop = leaf_property(meta, "cos")
    assert prop["enum"] == ["cos", "step"] and prop["option_weights"] == [0.7, 0.3]
    assert prop["automl_enabled"] is True
    with pytest.raises(ValueError, match="one weight per option"):
        str_field("cos", options=["cos", "step"], option_weights=[1.0])


def test_ordered_int_enum_and_inf_bounds_are_typed():
    meta = _meta(int_field(3, options=[1, 3], valid_min=1, valid_max="inf"))
    prop = leaf_property(meta, 3)
    assert prop["enum"] == [1, 3] and prop["minimum"] == 1 and prop["maximum"] == float("inf")


def test_distill_schema_declares_the_teacher_but_keeps_it_out_of_the_search():
    schema = build_schema("distill")
    distill = schema["properties"]["distill"]
    assert set(distill["properties"]) == {
        "teacher",
        "pretrained_teacher_model_path",
        "bindings",
        "results_dir",
    }
    assert set(distill["properties"]["teacher"]["properties"]) == set(
        schema["properties"]["model"]["properties"]
    )
    assert not any(p.startswith("distill.") for p in schema["automl_default_parameters"])
    assert schema["default"]["distill"]["bindings"] == [
        {"student_module_name": "srcs", "teacher_module_name": "srcs", "criterion": "IOU", "weight": 1.0}
    ]
    assert "distill" not in build_schema("train")["default"]


def test_gen_trt_engine_schema_keeps_its_section_and_train_schema_filters_deploy_actions():
    gen = build_schema("gen_trt_engine")
    assert "gen_trt_engine" in gen["properties"] and "export" not in gen["properties"]
    train = build_schema("train")
    assert not {"evaluate", "inference", "export", "gen_trt_engine"} & set(train["properties"])
    assert {"train", "distill", "quantize", "model", "dataset", "wandb"} <= set(train["properties"])
    # experiment-wide lists still cover the filtered sections, as TAO's do
    assert "gen_trt_engine" in train["popular"] and "evaluate.gpu_ids" in train["automl_disabled_parameters"]
