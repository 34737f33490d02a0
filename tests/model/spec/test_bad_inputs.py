"""Every bad input is a SpecError naming the key (or file/line), the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from model.errors import SpecError
from model.spec import resolve_spec
from tests.conftest import data_sources


def _spec(data: Path, **sections) -> dict:
    spec = {"results_dir": "/tmp/out", "dataset": data_sources(data), "train": {"num_epochs": 4}}
    for key, value in sections.items():
        spec.setdefault(key, {})
        if isinstance(value, dict) and isinstance(spec[key], dict):
            spec[key].update(value)
        else:
            spec[key] = value
    return spec


# (id, how to build the spec file text or dict, overrides, action, expected fragments of ONE problem)
CASES = [
    ("unknown-key", {"foo": 1}, [], "train", ["foo: unknown key"]),
    (
        "typo-suggestion",
        {"train": {"optim": {"lrr": 0.001}}},
        [],
        "train",
        ["train.optim.lrr: unknown key; did you mean train.optim.lr?"],
    ),
    (
        "misplaced-key",
        {"train": {"lr": 0.001}},
        [],
        "train",
        ["train.lr: unknown key; did you mean train.optim.lr?"],
    ),
    (
        "wrong-type",
        {"dataset": {"batch_size": "eight"}},
        [],
        "train",
        ["dataset.batch_size: got 'eight' (str); expected an integer"],
    ),
    (
        "float-for-int",
        {"train": {"num_epochs": 2.5}},
        [],
        "train",
        ["train.num_epochs: got 2.5", "an integer"],
    ),
    (
        "out-of-bounds",
        {"dataset": {"augmentation": {"distortion_prob": 1.5}}},
        [],
        "train",
        ["dataset.augmentation.distortion_prob: got 1.5; allowed range", "<= 1"],
    ),
    ("below-minimum", {"dataset": {"batch_size": 0}}, [], "train", ["dataset.batch_size: got 0", ">= 1"]),
    (
        "bad-enum",
        {"train": {"optim": {"lr_scheduler": "Cosine"}}},
        [],
        "train",
        ["train.optim.lr_scheduler: got 'Cosine'; allowed values: MultiStep, StepLR"],
    ),
    (
        "enum-suggestion",
        {"model": {"backbone": "resnet18"}},
        [],
        "train",
        ["model.backbone: got 'resnet18'", "did you mean resnet_18?"],
    ),
    (
        "list-for-mapping",
        {"dataset": {"val_data_sources": [{"image_dir": "a", "json_file": "b"}]}},
        [],
        "train",
        ["dataset.val_data_sources: got", "(list); expected a mapping"],
    ),
    (
        "mapping-for-list",
        {"model": {"return_interm_indices": {"a": 1}}},
        [],
        "train",
        ["model.return_interm_indices: got", "expected a list"],
    ),
    (
        "interm-indices-length",
        {"model": {"return_interm_indices": [2, 3]}},
        [],
        "train",
        ["model.return_interm_indices: has 2 entries", "num_feature_levels is 3"],
    ),
    (
        "num-select-gt-queries",
        {"model": {"num_queries": 100, "num_select": 300}},
        [],
        "train",
        ["model.num_select: 300 is larger than model.num_queries (100)"],
    ),
    (
        "validation-interval",
        {"train": {"num_epochs": 4, "validation_interval": 5}},
        [],
        "train",
        ["train.validation_interval: 5 is larger than train.num_epochs (4)"],
    ),
    (
        "checkpoint-interval",
        {"train": {"num_epochs": 4, "checkpoint_interval": 9}},
        [],
        "train",
        ["train.checkpoint_interval: 9 is larger than train.num_epochs (4)"],
    ),
    (
        "missing-data-source",
        {"dataset": {"val_data_sources": {"image_dir": "", "json_file": ""}}},
        [],
        "train",
        ["dataset.val_data_sources.image_dir: required by `rtdetr train` but not set"],
    ),
    (
        "missing-checkpoint",
        {},
        [],
        "evaluate",
        ["evaluate.checkpoint: required by `rtdetr evaluate` but not set"],
    ),
    (
        "path-does-not-exist",
        {"dataset": {"test_data_sources": {"image_dir": "/nope/images", "json_file": "/nope/a.json"}}},
        ["evaluate.checkpoint=/nope/model.pth"],
        "evaluate",
        ["dataset.test_data_sources.image_dir: '/nope/images' does not exist"],
    ),
    (
        "eval-class-ids",
        {"dataset": {"num_classes": 3, "eval_class_ids": [1, 3]}},
        [],
        "train",
        ["dataset.eval_class_ids: [3] not below dataset.num_classes (3)"],
    ),
    (
        "spatial-size",
        {"dataset": {"augmentation": {"eval_spatial_size": [100, 128]}}},
        [],
        "train",
        ["dataset.augmentation.eval_spatial_size: got [100, 128]", "multiples of 32"],
    ),
    (
        "automl-policy",
        {"automl_policy": "on"},
        [],
        "train",
        ["automl_policy is a run argument, not a spec key"],
    ),
    ("override-not-key-value", {}, ["train.num_epochs"], "train", ["expected key=value"]),
    (
        "override-typo",
        {},
        ["train.optim.lrr=0.1"],
        "train",
        ["train.optim.lrr: unknown key; did you mean train.optim.lr?"],
    ),
    (
        "override-index-past-end",
        {},
        ["dataset.train_data_sources[3].image_dir=/x"],
        "train",
        ["index 3 is past the end"],
    ),
    ("unknown-action", {}, [], "fly", ["unknown action 'fly'"]),
]


@pytest.mark.parametrize(
    ("case", "update", "overrides", "action", "fragments"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_named(case, update, overrides, action, fragments, synthetic_data, tmp_path):
    spec = _spec(synthetic_data)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as info:
        resolve_spec(action, path, overrides)
    matching = [p for p in info.value.problems if all(f in p for f in fragments)]
    assert matching, f"no problem contains {fragments}; got {info.value.problems}"


FILE_CASES = [
    ("malformed-yaml", "dataset:\n  batch_size: 4\n    workers: 2\n", ["malformed YAML at line 3"]),
    ("unclosed-bracket", "model:\n  feat_strides: [8, 16\n", ["malformed YAML at line"]),
    ("not-a-mapping", "- 1\n- 2\n", ["must be a mapping of sections", "list"]),
    ("scalar", "just text\n", ["must be a mapping of sections", "str"]),
    ("empty-file", "", ["the spec file is empty"]),
    ("comments-only", "# nothing here\n", ["the spec file is empty"]),
    ("duplicate-key", "train:\n  num_epochs: 2\n  num_epochs: 3\n", ["duplicate key 'num_epochs'", "line 3"]),
]


@pytest.mark.parametrize(("case", "text", "fragments"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_file_is_named(case, text, fragments, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        resolve_spec("train", path, check_paths=False)
    message = str(info.value)
    assert str(path) in message
    assert all(f in message for f in fragments), message


def test_missing_spec_file_is_named(tmp_path):
    with pytest.raises(SpecError, match=r"spec file not found: .*nope\.yaml"):
        resolve_spec("train", tmp_path / "nope.yaml")


def test_all_problems_reported_at_once(synthetic_data, tmp_path):
    spec = _spec(synthetic_data)
    spec["train"] = {"num_epochs": 2, "optim": {"lrr": 1, "lr_scheduler": "Cosine"}}
    spec["model"] = {"num_queries": 10, "num_select": 20}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as info:
        resolve_spec("train", path)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 3, text
    for fragment in ("train.optim.lrr", "train.optim.lr_scheduler", "model.num_select"):
        assert fragment in text
    assert "3 problems in the spec" in str(info.value)
