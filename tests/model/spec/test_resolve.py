"""Merge order (template <- YAML <- overrides <- shorthand), YAML typing and the resolved paths."""

from __future__ import annotations

from pathlib import Path

import yaml

from model.spec import resolve_spec
from tests.conftest import data_sources


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_template_defaults_fill_what_the_user_left_out(synthetic_data, tmp_path):
    path = _write(tmp_path, {"dataset": data_sources(synthetic_data), "train": {"num_epochs": 3}})
    spec = resolve_spec("train", path)
    assert spec["train"]["num_epochs"] == 3
    assert spec["train"]["optim"]["lr"] == 0.0001  # TAO default
    assert spec["model"]["backbone"] == "resnet_50"
    assert spec["dataset"]["augmentation"]["eval_spatial_size"] == [640, 640]


def test_overrides_beat_yaml_and_shorthand_beats_overrides(synthetic_data, tmp_path):
    path = _write(
        tmp_path, {"dataset": data_sources(synthetic_data), "train": {"num_epochs": 3, "optim": {"lr": 0.01}}}
    )
    spec = resolve_spec(
        "train",
        path,
        [
            "num_epochs=7",
            "train.num_epochs=5",
            "train.optim.lr=1e-3",
            "batch_size=2",
            "model.feat_strides=[8,16,32]",
        ],
    )
    assert spec["train"]["num_epochs"] == 7
    assert spec["train"]["optim"]["lr"] == 0.001
    assert spec["dataset"]["batch_size"] == 2


def test_yaml_1e_minus_4_is_a_float(synthetic_data, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        yaml.safe_dump({"dataset": data_sources(synthetic_data)}) + "train:\n  optim:\n    lr: 1e-4\n"
    )
    assert resolve_spec("train", path)["train"]["optim"]["lr"] == 1e-4


def test_list_index_override_sets_one_source(synthetic_data, tmp_path):
    path = _write(tmp_path, {"dataset": data_sources(synthetic_data)})
    second = str(synthetic_data / "val" / "images.tar.gz")
    spec = resolve_spec(
        "train",
        path,
        [
            f"dataset.train_data_sources[1].image_dir={second}",
            f"dataset.train_data_sources[1].json_file={synthetic_data / 'val' / 'annotations.json'}",
        ],
    )
    assert [s["image_dir"] for s in spec["dataset"]["train_data_sources"]][1] == second


def test_relative_paths_become_absolute_from_the_working_folder(synthetic_data, tmp_path):
    rel = {
        "train_data_sources": [{"image_dir": "train/images.tar.gz", "json_file": "train/annotations.json"}],
        "val_data_sources": {"image_dir": "val/images.tar.gz", "json_file": "val/annotations.json"},
    }
    path = _write(tmp_path, {"dataset": rel})
    spec = resolve_spec("train", path, cwd=synthetic_data)
    assert spec["dataset"]["train_data_sources"][0]["image_dir"] == str(
        synthetic_data / "train" / "images.tar.gz"
    )


def test_no_spec_file_gives_the_template_and_path_errors():
    import pytest

    from model.errors import SpecError

    with pytest.raises(SpecError) as info:
        resolve_spec("train")
    assert any("dataset.train_data_sources[0].image_dir: required" in p for p in info.value.problems)
    spec = resolve_spec("train", check_paths=False)
    assert spec["model"]["num_queries"] == 300
