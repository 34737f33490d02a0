"""The search space: ranges, exclusions, the user's choices, relations, and the table."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from automl.errors import SettingError
from automl.space.build import apply_params, build_space, format_space_table
from automl.space.schema_rows import load_schema
from tests.automl.synthetic_space import SYNTH, draw, spec_of, tao_schema

# ---- the RT-DETR default space ------------------------------------------------------------------


def test_default_rtdetr_space(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    space = build_space(schema, spec)
    by = {p.name: p for p in space.params}
    # infinite / missing max: a range around the spec value instead of collapsing onto it
    assert (by["dataset.batch_size"].low, by["dataset.batch_size"].high) == (2, 8)
    assert (by["model.num_queries"].low, by["model.num_queries"].high) == (150, 600)
    assert (by["model.dec_layers"].low, by["model.dec_layers"].high) == (3, 12)
    assert (by["model.enc_layers"].low, by["model.enc_layers"].high) == (1, 2)
    # lower bound 0 excluded by "> 0.0": [v/100, min(max, 10v)] on a log scale
    lr = by["train.optim.lr"]
    assert lr.low == pytest.approx(1e-6) and lr.high == pytest.approx(1e-3) and lr.scale == "log"
    assert by["train.optim.lr_decay"].high == 1.0
    # a closed [0, 1] probability stays linear over the schema bounds
    prob = by["dataset.augmentation.distortion_prob"]
    assert (prob.low, prob.high, prob.scale) == (0.0, 1.0, "linear")
    # inert parameters are listed, not searched
    reasons = {e.name: e.reason for e in space.excluded}
    assert set(reasons) == {
        "dataset.workers",
        "train.optim.momentum",
        "train.optim.lr_step_size",
        "train.ema.decay",
    }
    assert "AdamW" in reasons["train.optim.momentum"]
    assert "StepLR" in reasons["train.optim.lr_step_size"]
    assert "enable_ema" in reasons["train.ema.decay"]
    assert "speed" in reasons["dataset.workers"]
    # parents before dependants
    names = space.names
    assert names.index("model.num_queries") < names.index("model.num_select")
    assert by["model.num_select"].encoding == "fraction"


def test_ours_and_tao_packaged_schema_give_the_same_space(
    schema: dict[str, Any], spec: dict[str, Any], tao_skill: Path
) -> None:
    tao = load_schema(tao_skill / "schemas" / "train.schema.json")
    ours, theirs = build_space(schema, spec), build_space(tao, spec)
    assert sorted(ours.names) == sorted(theirs.names)
    assert {p.name: p for p in ours.params} == {p.name: p for p in theirs.params}
    assert sorted(e.name for e in ours.excluded) == sorted(e.name for e in theirs.excluded)


def test_inert_parameters_come_back_when_they_matter(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    spec["train"]["optim"]["lr_scheduler"] = "StepLR"
    spec["train"]["num_epochs"] = 12
    spec["train"]["enable_ema"] = True
    space = build_space(schema, spec)
    step = space.get("train.optim.lr_step_size")
    assert step is not None and (step.low, step.high) == (1, 12)  # capped at num_epochs
    decay = space.get("train.ema.decay")
    assert decay is not None and decay.scale == "log1m"
    assert (decay.low, decay.high) == pytest.approx((0.99, 0.9999))
    assert {e.name for e in space.excluded} == {"dataset.workers", "train.optim.momentum"}
    values = draw(space, 50)
    assert all(0.99 <= v["train.ema.decay"] <= 0.9999 for v in values)
    assert all(1 <= v["train.optim.lr_step_size"] <= 12 for v in values)


def test_searching_the_deciding_key_keeps_the_dependant(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    space = build_space(
        schema,
        spec,
        hyperparameters=["train.optim.lr_scheduler", "train.optim.lr_step_size", "train.optim.lr"],
    )
    assert space.names == ["train.optim.lr_scheduler", "train.optim.lr_step_size", "train.optim.lr"]
    assert space.get("train.optim.lr_scheduler").choices == ("MultiStep", "StepLR", "FlatCosine")
    assert space.excluded == []


def test_frozen_backbone_leaves_lr_backbone_out(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    spec["model"]["train_backbone"] = False
    space = build_space(schema, spec)
    assert "train.optim.lr_backbone" not in space.names
    assert any(e.name == "train.optim.lr_backbone" and "frozen" in e.reason for e in space.excluded)


# ---- the user's choices -------------------------------------------------------------------------


def test_exact_hyperparameters_list(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    space = build_space(schema, spec, hyperparameters=["train.optim.lr", "model.backbone"])
    assert space.names == ["train.optim.lr", "model.backbone"]
    assert space.excluded == []
    backbone = space.get("model.backbone")
    assert backbone.kind == "categorical" and "convnext_tiny" in backbone.choices


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("train.optim.lrr", "train.optim.lr"),
        ("lr", "train.optim.lr"),
        ("model.num_query", "model.num_queries"),
    ],
)
def test_unknown_parameter_names_suggest_close_matches(
    schema: dict[str, Any], spec: dict[str, Any], name: str, hint: str
) -> None:
    with pytest.raises(SettingError) as info:
        build_space(schema, spec, hyperparameters=[name])
    assert str(info.value).startswith(f"{name}: unknown parameter")
    assert f"did you mean {hint}" in str(info.value) or hint in str(info.value)


def test_a_section_is_not_a_parameter(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    with pytest.raises(SettingError, match=r"train\.optim: is a section"):
        build_space(schema, spec, hyperparameters=["train.optim"])


def test_disabled_parameter_needs_the_override(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    with pytest.raises(SettingError, match="override_automl_disabled_params") as info:
        build_space(schema, spec, hyperparameters=["model.hidden_dim"])
    assert str(info.value).startswith("model.hidden_dim: automl_enabled is false")
    space = build_space(schema, spec, hyperparameters=["model.hidden_dim"], override_disabled=True)
    hidden = space.get("model.hidden_dim")
    assert hidden is not None and (hidden.low, hidden.high) == (128, 512)


def test_user_ranges(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    ranges = {
        "train.optim.lr": "1e-5:1e-3:log",
        "model.dec_layers": "3:6",
        "model.backbone": "resnet_18,resnet_34",
        "train.optim.lr_backbone": "1e-6:1e-4:linear",
    }
    space = build_space(schema, spec, user_ranges=ranges)
    lr, dec, backbone = (
        space.get("train.optim.lr"),
        space.get("model.dec_layers"),
        space.get("model.backbone"),
    )
    assert (lr.low, lr.high, lr.scale) == (1e-5, 1e-3, "log")
    assert (dec.low, dec.high, dec.scale) == (3, 6, "linear")
    assert backbone.choices == ("resnet_18", "resnet_34")  # a user range adds the parameter
    assert space.get("train.optim.lr_backbone").scale == "linear"  # the user's scale wins
    for values in draw(space, 30):
        assert 1e-5 <= values["train.optim.lr"] <= 1e-3
        assert values["model.dec_layers"] in (3, 4, 5, 6)
        assert values["model.backbone"] in ("resnet_18", "resnet_34")


def test_user_choices_for_numbers(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    space = build_space(
        schema, spec, hyperparameters=["model.dec_layers"], user_ranges={"model.dec_layers": "3,6"}
    )
    dec = space.get("model.dec_layers")
    assert (dec.kind, dec.choices) == ("categorical", (3, 6))
    assert {v["model.dec_layers"] for v in draw(space, 40)} == {3, 6}
    with pytest.raises(SettingError, match="outside"):
        build_space(schema, spec, user_ranges={"model.dec_layers": "0,6"})


def test_user_range_accepts_tao_custom_range_mapping(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    space = build_space(schema, spec, user_ranges={"train.optim.lr": {"valid_min": 1e-5, "valid_max": 1e-2}})
    lr = space.get("train.optim.lr")
    assert (lr.low, lr.high, lr.scale) == (1e-5, 1e-2, "log")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("model.backbone", "resnet_18,resnet_999", "resnet_999 not among the options"),
        ("train.optim.lr", "0:1e-3", "must be > 0.0"),
        ("train.optim.lr", "1e-3:1e-5", "is empty"),
        ("train.optim.lr", "1e-5:2", "outside the schema's bounds"),
        ("model.dec_layers", "2.5:6", "not an integer"),
        ("train.optim.lr", "1e-4", "not a range"),
        ("train.optim.lr", "1e-5:1e-3:cubic", "must be log or linear"),
        ("model.backbone", "resnet_18", "at least two distinct options"),
        ("train.optim.lr_steps", "1:5", "cannot be searched"),
    ],
)
def test_bad_user_ranges(
    schema: dict[str, Any], spec: dict[str, Any], name: str, text: str, message: str
) -> None:
    with pytest.raises(SettingError, match=message) as info:
        build_space(schema, spec, user_ranges={name: text}, override_disabled=True)
    assert str(info.value).startswith(name)


# ---- rules on small synthetic schemas -----------------------------------------------------------


def test_fixed_dependant_narrows_the_searched_parent(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    space = build_space(schema, spec, hyperparameters=["model.num_queries"])
    queries = space.get("model.num_queries")
    assert (queries.low, queries.high) == (300, 600)  # num_select stays 300 <= num_queries


def test_fixed_parent_narrows_the_searched_dependant(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    spec["model"]["num_queries"] = 100
    space = build_space(schema, spec, hyperparameters=["model.num_select"])
    select = space.get("model.num_select")
    assert (select.low, select.high, select.encoding) == (1, 100, "direct")


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ({"type": "float", "default": 0.01, "minimum": 1e-4, "maximum": 1.0}, ("log", 1e-4, 1.0)),
        ({"type": "float", "default": 1.0, "minimum": 0.1, "maximum": 5.0}, ("linear", 0.1, 5.0)),
        ({"type": "float", "default": 5.0, "minimum": 0.0, "maximum": math.inf}, ("log", 0.5, 50.0)),
        ({"type": "float", "default": 0.2, "math_cond": "> 0.0"}, ("log", 0.02, 2.0)),
        ({"type": "int", "default": 4, "minimum": 1, "maximum": math.inf}, ("linear", 2, 8)),
        ({"type": "int", "default": 1, "minimum": 1, "maximum": 10000}, ("linear", 1, 10000)),
    ],
)
def test_scale_and_infinite_bounds(prop: dict[str, Any], expected: tuple[str, float, float]) -> None:
    schema = tao_schema(x=prop)
    param = build_space(schema, spec_of(schema)).params[0]
    assert param.scale == expected[0]
    assert (param.low, param.high) == pytest.approx(expected[1:])


def test_open_bound_around_zero_needs_a_user_range() -> None:
    schema = tao_schema(x={"type": "float", "default": 0.0, "minimum": 0.0, "maximum": math.inf})
    space = build_space(schema, spec_of(schema))  # a default parameter: listed, not fatal
    assert space.params == [] and "give one, e.g. train.x=low:high" in space.excluded[0].reason
    with pytest.raises(SettingError, match="cannot derive a finite search range"):
        build_space(schema, spec_of(schema), hyperparameters=["train.x"])
    assert build_space(schema, spec_of(schema), user_ranges={"train.x": "0:2"}).params[0].high == 2.0


# ---- spec updates, baseline, table --------------------------------------------------------------


def test_space_as_plain_data(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    data = json.loads(json.dumps(build_space(schema, spec).as_dict()))
    lr = next(p for p in data["params"] if p["name"] == "train.optim.lr")
    assert (lr["kind"], lr["scale"], lr["low"], lr["high"]) == ("float", "log", 1e-6, 1e-3)
    assert {e["name"] for e in data["excluded"]} >= {"dataset.workers"}


def test_apply_params_sets_dotted_keys_on_a_copy(spec: dict[str, Any]) -> None:
    before = copy.deepcopy(spec)
    out = apply_params(spec, {"train.optim.lr": 3e-4, "model.num_queries": 200, "new.section.key": 1})
    assert out["train"]["optim"]["lr"] == 3e-4 and out["model"]["num_queries"] == 200
    assert out["new"]["section"]["key"] == 1
    assert out["train"]["optim"]["lr_backbone"] == spec["train"]["optim"]["lr_backbone"]
    assert spec == before


def test_space_table_lists_params_scales_and_exclusions(schema: dict[str, Any], spec: dict[str, Any]) -> None:
    text = format_space_table(build_space(schema, spec))
    lines = text.splitlines()
    assert lines[0].split() == ["parameter", "kind", "range", "scale", "default", "notes"]
    lr = next(line for line in lines if line.startswith("train.optim.lr "))
    assert "[1e-06, 0.001]" in lr and " log " in lr
    assert "<= model.num_queries" in text
    assert "excluded:" in text and "AdamW, which ignores momentum" in text
    synth = format_space_table(build_space(SYNTH, spec_of(SYNTH)))
    assert "powers of 2" in synth and "multiples of 8" in synth and "weights" in synth
    assert "{2, 4, 8, 16, 32, 64, 128, 256}" in synth and "cosine (0.40)" in synth
