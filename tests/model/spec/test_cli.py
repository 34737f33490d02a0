"""`rtdetr validate` and `automl validate` as a user runs them (real processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from automl.errors import SpecRejected
from automl.spec import resolve_spec as automl_resolve
from tests.conftest import ROOT, data_sources


def _rtdetr(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_validate_prints_the_resolved_spec(synthetic_data, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"dataset": data_sources(synthetic_data)}))
    proc = _rtdetr("validate", "-e", str(path), "--action", "train", "train.num_epochs=3")
    assert proc.returncode == 0, proc.stderr
    spec = yaml.safe_load(proc.stdout)
    assert spec["train"]["num_epochs"] == 3
    assert spec["model"]["backbone"] == "resnet_50"


def test_validate_reports_every_problem_and_exits_2(synthetic_data, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"dataset": data_sources(synthetic_data), "train": {"optim": {"lrr": 1}}}))
    proc = _rtdetr("validate", "-e", str(path), "dataset.batch_size=zero")
    assert proc.returncode == 2
    assert "train.optim.lrr: unknown key; did you mean train.optim.lr?" in proc.stderr
    assert "dataset.batch_size: got 'zero'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_automl_gets_the_same_answer_through_a_process(synthetic_data, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"dataset": data_sources(synthetic_data)}))
    spec = automl_resolve(path, ["learning_rate=0.002"])
    assert spec["train"]["optim"]["lr"] == 0.002
    with pytest.raises(SpecRejected, match=r"model\.num_select: 400 is larger than model\.num_queries"):
        automl_resolve(path, ["model.num_select=400"])


def test_demo_spec_validates_on_the_synthetic_dataset(tmp_path):
    proc = _rtdetr(
        "dataset",
        "synth",
        "--out",
        str(tmp_path / "data" / "synthetic"),
        "--train",
        "8",
        "--val",
        "4",
        "--test",
        "4",
    )
    assert proc.returncode == 0, proc.stderr
    proc = _rtdetr("validate", "-e", str(ROOT / "configs" / "demo.yaml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spec = yaml.safe_load(proc.stdout)
    assert spec["model"]["backbone"] == "resnet_18"
    assert spec["dataset"]["train_data_sources"][0]["image_dir"] == str(
        tmp_path / "data" / "synthetic" / "train" / "images.tar.gz"
    )
    proc = _rtdetr("validate", "-e", str(ROOT / "configs" / "fast.yaml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    fast = yaml.safe_load(proc.stdout)  # the demo's model with the fast recipe
    assert fast["model"] == {**spec["model"], "class_loss": "mal"}
    assert (fast["train"]["optim"]["lr_scheduler"], fast["train"]["enable_ema"]) == ("FlatCosine", True)


def test_schemas_check_passes_on_the_committed_files():
    proc = _rtdetr("schemas", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
