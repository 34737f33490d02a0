"""NaN never passes spec validation: every way a float comes in is rejected, naming the key, the value
and the allowed range, before any compute.

NaN compares false with every bound, so a range check alone lets it through (``inf`` is caught by a
finite bound; NaN is not): ``train.optim.lr=.nan`` used to start training and fail later with "loss
diverged".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model.errors import SpecError
from model.spec import resolve_spec
from tests.conftest import tiny_spec, write_spec


def _problems(action: str, path: Path | None, overrides=(), **kwargs) -> list[str]:
    with pytest.raises(SpecError) as info:
        resolve_spec(action, path, overrides, **kwargs)
    return info.value.problems


def _one(problems: list[str], key: str) -> str:
    matching = [p for p in problems if p.startswith(f"{key}:")]
    assert len(matching) == 1, f"expected one problem for {key}; got {problems}"
    return matching[0]


@pytest.fixture()
def spec_file(synthetic_data, tmp_path) -> Path:
    return write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "out"))


# (id, override, key, fragments of the one problem naming the key)
OVERRIDE_CASES = [
    ("bounded", "train.optim.lr=.nan", "train.optim.lr", ["got nan", "allowed range", ">= 0.0 and <= 1.0"]),
    ("bounded-NaN", "train.optim.momentum=.NaN", "train.optim.momentum", ["got nan", "<= 1.0"]),
    ("lower-bound-only", "model.expansion=.NAN", "model.expansion", ["got nan", ">= 0.0"]),
    (
        "unbounded",
        "train.clip_grad_norm=.nan",
        "train.clip_grad_norm",
        ["got nan", "allowed range is any real number"],
    ),
    ("unbounded-model", "model.gamma=.nan", "model.gamma", ["got nan", "allowed range is any real number"]),
    ("nested-mapping", "train.ema.decay=.nan", "train.ema.decay", ["got nan", ">= 0.0 and <= 1.0"]),
    ("nan-string", "train.optim.lr=nan", "train.optim.lr", ["got 'nan' (str)", "expected a number"]),
    ("nan-string-caps", "train.optim.lr=NaN", "train.optim.lr", ["got 'NaN' (str)", "<= 1.0"]),
    ("shorthand", "learning_rate=.nan", "train.optim.lr", ["got nan", ">= 0.0 and <= 1.0"]),
    (
        "free-mapping",
        "quantize.backend_kwargs={scale: .nan}",
        "quantize.backend_kwargs.scale",
        ["got nan", "give a real number"],
    ),
    ("int-field", "train.num_epochs=.nan", "train.num_epochs", ["got nan (float)", "expected an integer"]),
    ("list-of-ints", "train.optim.lr_steps=[10, .nan]", "train.optim.lr_steps[1]", ["got nan"]),
]


@pytest.mark.parametrize(
    ("case", "override", "key", "fragments"), OVERRIDE_CASES, ids=[c[0] for c in OVERRIDE_CASES]
)
def test_nan_override_is_rejected(case, override, key, fragments, spec_file):
    problem = _one(_problems("train", spec_file, [override]), key)
    assert all(f in problem for f in fragments), problem


def test_nan_in_the_yaml_file_is_rejected_with_its_range(synthetic_data, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path / "out")
    spec["train"]["optim"]["weight_decay"] = float("nan")  # safe_dump writes .nan
    spec["dataset"]["augmentation"]["distortion_prob"] = float("nan")
    path = write_spec(tmp_path / "spec.yaml", spec)
    assert ".nan" in path.read_text()
    problems = _problems("train", path)
    assert len(problems) == 2, problems
    assert "got nan" in _one(problems, "train.optim.weight_decay")
    assert ">= 0.0 and <= 1.0" in _one(problems, "dataset.augmentation.distortion_prob")


def test_nan_inside_a_list_of_mappings_is_rejected(synthetic_data, tmp_path):
    """distill.bindings[i].weight: a float field of mappings inside a list."""
    spec = tiny_spec(synthetic_data, tmp_path / "out")
    spec["distill"] = {
        "teacher": {"backbone": "resnet_18", "gamma": float("nan")},
        "pretrained_teacher_model_path": str(tmp_path / "teacher.pth"),
        "bindings": [
            {"teacher_module_name": "srcs", "student_module_name": "srcs", "criterion": "L2", "weight": 1.0},
            {
                "teacher_module_name": "srcs",
                "student_module_name": "srcs",
                "criterion": "L2",
                "weight": float("nan"),
            },
        ],
    }
    path = write_spec(tmp_path / "spec.yaml", spec)
    problems = _problems("distill", path, check_paths=False)
    problem = _one(problems, "distill.bindings[1].weight")
    assert "nan" in problem and ">= 0" in problem
    assert "got nan" in _one(problems, "distill.teacher.gamma")
    assert not [p for p in problems if p.startswith("distill.bindings[0]")]


def test_nan_from_a_mapping_given_in_python_is_rejected(synthetic_data, tmp_path):
    """The automl launcher's path: a spec mapping holding float('nan'), no YAML in between."""
    spec = tiny_spec(synthetic_data, tmp_path / "out")
    spec["train"]["optim"]["lr_backbone"] = float("nan")
    problem = _one(_problems("train", None, user_spec=spec), "train.optim.lr_backbone")
    assert "got nan" in problem and "<= 1.0" in problem


def test_a_finite_value_still_passes(spec_file):
    spec = resolve_spec("train", spec_file, ["train.optim.weight_decay=0.0", "train.clip_grad_norm=0.5"])
    assert spec["train"]["optim"]["weight_decay"] == 0.0 and spec["train"]["clip_grad_norm"] == 0.5


def test_validate_exits_2_naming_every_nan(spec_file):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "model.cli",
            "validate",
            "-e",
            str(spec_file),
            "train.optim.weight_decay=.nan",
            "train.clip_grad_norm=.nan",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "train.optim.weight_decay: got nan" in proc.stderr and "<= 1.0" in proc.stderr
    assert "train.clip_grad_norm: got nan" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_train_with_nan_lr_fails_before_any_compute(spec_file, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "model.cli", "train", "-e", str(spec_file), "train.optim.lr=.nan"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "train.optim.lr: got nan" in proc.stderr and "loss diverged" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing was written: rejected before the results folder


def test_yaml_loader_reads_nan_spellings_as_floats():
    """The spellings the tests above rely on (YAML's .nan family) are floats, 'nan' stays a string."""
    from model.spec import parse_value

    for text in (".nan", ".NaN", ".NAN"):
        value = parse_value(text)
        assert isinstance(value, float) and value != value
    assert parse_value("nan") == "nan"
    assert yaml.safe_dump({"x": float("nan")}).strip() == "x: .nan"
