"""The policy resolver: explicit --policy, request phrases, and the runnability gate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from automl.errors import AutomlError, SettingError
from automl.settings.policy import NOT_RUNNABLE, Plan, resolve_policy

FILES = ("references/skill_info.yaml", "schemas/train.schema.json", "references/spec_template_train.yaml")


@pytest.fixture
def model_root(root: Path, tmp_path: Path) -> Path:
    """A copy of the files the gate reads, to break one at a time."""
    for rel in FILES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / rel, tmp_path / rel)
    return tmp_path


@pytest.mark.parametrize(
    ("policy", "request_text", "search", "reason_part"),
    [
        ("auto", None, True, "--policy auto"),
        ("on", None, True, "--policy on"),
        ("ON", "plain training please", True, "--policy on"),
        ("off", None, False, "--policy off"),
        ("off", "tune everything", False, "--policy off"),
        (None, None, True, "no --policy or --request"),
        (None, "   ", True, "no --policy or --request"),
        (None, "find the best learning rate", True, "does not turn AutoML off"),
    ],
)
def test_explicit_policy_then_request_then_default(
    model_root: Path, policy: str | None, request_text: str | None, search: bool, reason_part: str
) -> None:
    plan = resolve_policy(policy, request_text, model_root)
    assert isinstance(plan, Plan)
    assert plan.search is search
    assert reason_part in plan.reason
    assert plan.policy == ("off" if policy and policy.lower() == "off" else "auto")
    assert plan.message is None


@pytest.mark.parametrize(
    "text",
    [
        "turn off AutoML",
        "Please TURN OFF automl for this run.",
        "disable AutoML",
        "train it once, no HPO",
        "plain training, no HPO",
        "I just want plain training",
        "run without AutoML",
        "automl off",
        "no automl this time",
        "no hyperparameter search",
        "turn the hpo off",
        "don't use AutoML",
        "skip the hyperparameter tuning",
    ],
)
def test_request_phrases_turn_the_search_off(model_root: Path, text: str) -> None:
    plan = resolve_policy(None, text, model_root)
    assert (plan.search, plan.policy) == (False, "off")
    assert "turns AutoML off" in plan.reason


@pytest.mark.parametrize(
    "text",
    [
        "tune the learning rate with AutoML",
        "don't disable AutoML",
        "search hard, there is no rush",
        "keep automl_disabled params out",
        "training on 2 GPUs",
    ],
)
def test_other_requests_mean_auto(model_root: Path, text: str) -> None:
    plan = resolve_policy(None, text, model_root)
    assert (plan.search, plan.policy) == (True, "auto")


@pytest.mark.parametrize("bad", ["yes", "maybe", "", "autoo"])
def test_unknown_policy_is_a_setting_error(model_root: Path, bad: str) -> None:
    with pytest.raises(SettingError) as info:
        resolve_policy(bad, None, model_root)
    message = str(info.value)
    assert "--policy" in message and repr(bad) in message
    assert "auto, on, off" in message
    assert isinstance(info.value, AutomlError)


def _break(root: Path, rel: str, how: str) -> None:
    path = root / rel
    if how == "missing":
        path.unlink()
    else:
        path.write_text("{not: [valid" if rel.endswith(".yaml") else '{"properties": ', encoding="utf-8")


@pytest.mark.parametrize(
    ("rel", "how"),
    [(rel, how) for rel in FILES for how in ("missing", "broken")],
)
def test_auto_trains_once_when_not_runnable(model_root: Path, rel: str, how: str) -> None:
    _break(model_root, rel, how)
    plan = resolve_policy("auto", None, model_root)
    assert plan.search is False
    assert plan.policy == "auto"
    assert plan.message == NOT_RUNNABLE
    assert plan.message == "AutoML is enabled but not runnable for this model until schemas are generated"
    assert Path(rel).name in plan.reason
    assert ("missing" if how == "missing" else "does not parse") in plan.reason


def test_schema_without_properties_is_not_runnable(model_root: Path) -> None:
    (model_root / "schemas/train.schema.json").write_text('{"type": "object"}', encoding="utf-8")
    plan = resolve_policy(None, None, model_root)
    assert (plan.search, plan.message) == (False, NOT_RUNNABLE)


@pytest.mark.parametrize("value", ["false", "null", "'yes'"])
def test_auto_trains_once_when_automl_is_disabled_for_the_model(model_root: Path, value: str) -> None:
    info = model_root / "references/skill_info.yaml"
    text = info.read_text(encoding="utf-8").replace("automl_enabled: true", f"automl_enabled: {value}")
    info.write_text(text, encoding="utf-8")
    plan = resolve_policy(None, "tune it", model_root)
    assert plan.search is False
    assert plan.message is not None and "AutoML is disabled for this model" in plan.message
    assert "automl_enabled" in plan.reason


def test_off_needs_no_files(tmp_path: Path) -> None:
    plan = resolve_policy(None, "no HPO", tmp_path)
    assert (plan.search, plan.policy, plan.message) == (False, "off", None)


def test_plan_is_frozen(model_root: Path) -> None:
    plan = resolve_policy(None, None, model_root)
    with pytest.raises(AttributeError):
        plan.search = False  # type: ignore[misc]
