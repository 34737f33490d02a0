"""Bad training input is a clear error before any training step (and nothing is written over)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.conftest import tiny_spec, write_spec
from tests.model.actions.test_train import rtdetr, status_lines

pytestmark = pytest.mark.slow


def _train_dir(tmp_path: Path, data: Path) -> Path:
    """A writable copy of the synthetic train split with its images as a plain folder."""
    target = tmp_path / "train"
    target.mkdir()
    with tarfile.open(data / "train" / "images.tar.gz") as tar:
        tar.extractall(target / "images", filter="data")
    shutil.copy(data / "train" / "annotations.json", target / "annotations.json")
    return target


def _run(tmp_path: Path, spec: dict, *overrides: str):
    proc = rtdetr("train", "-e", str(write_spec(tmp_path / "spec.yaml", spec)), *overrides)
    return proc, tmp_path / "out" / "train"


def _assert_failed_before_training(proc, folder: Path, *fragments: str) -> None:
    assert proc.returncode != 0
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not list(folder.glob("model_epoch_*.pth"))
    if (folder / "status.json").exists():
        assert status_lines(folder)[-1]["status"] == "FAILURE"


def _with_train_source(spec: dict, image_dir: Path | str, json_file: Path | str) -> dict:
    spec["dataset"]["train_data_sources"] = [{"image_dir": str(image_dir), "json_file": str(json_file)}]
    return spec


def test_missing_image_folder(synthetic_data, tmp_path):
    spec = _with_train_source(
        tiny_spec(synthetic_data, tmp_path / "out"),
        tmp_path / "nope",
        synthetic_data / "train" / "annotations.json",
    )
    proc, _folder = _run(tmp_path, spec)
    assert proc.returncode == 2
    assert "dataset.train_data_sources[0].image_dir" in proc.stderr and "does not exist" in proc.stderr


def test_corrupt_image_is_skipped_and_counted(synthetic_data, tmp_path):
    train = _train_dir(tmp_path, synthetic_data)
    victim = sorted((train / "images").iterdir())[0]
    victim.write_bytes(b"not a jpeg")
    spec = _with_train_source(
        tiny_spec(synthetic_data, tmp_path / "out", train={"num_epochs": 1}),
        train / "images",
        train / "annotations.json",
    )
    proc, folder = _run(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "skipped" in text and "unreadable" in text
    assert status_lines(folder)[-1]["status"] == "SUCCESS"


def test_truncated_archive(synthetic_data, tmp_path):
    data = (synthetic_data / "train" / "images.tar.gz").read_bytes()
    broken = tmp_path / "images.tar.gz"
    broken.write_bytes(data[: len(data) // 2])
    spec = _with_train_source(
        tiny_spec(synthetic_data, tmp_path / "out"), broken, synthetic_data / "train" / "annotations.json"
    )
    proc, folder = _run(tmp_path, spec)
    _assert_failed_before_training(proc, folder, str(broken))


def test_archive_member_escaping_the_cache(synthetic_data, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        payload = b"x"
        info = tarfile.TarInfo("../escape.jpg")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    spec = _with_train_source(
        tiny_spec(synthetic_data, tmp_path / "out"), evil, synthetic_data / "train" / "annotations.json"
    )
    proc, folder = _run(tmp_path, spec)
    _assert_failed_before_training(proc, folder, "../escape.jpg")


def test_category_id_at_or_above_num_classes(synthetic_data, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path / "out", dataset={"num_classes": 3, "eval_class_ids": [1, 2]})
    proc, folder = _run(tmp_path, spec)
    _assert_failed_before_training(proc, folder, "annotations.json", "dataset.num_classes")
    assert "3" in proc.stderr and "4" in proc.stderr  # the largest id and the fix (largest id + 1)


def test_empty_train_set(synthetic_data, tmp_path):
    train = _train_dir(tmp_path, synthetic_data)
    ann = json.loads((train / "annotations.json").read_text())
    ann["annotations"] = []
    (train / "annotations.json").write_text(json.dumps(ann))
    spec = _with_train_source(
        tiny_spec(synthetic_data, tmp_path / "out"), train / "images", train / "annotations.json"
    )
    proc, folder = _run(tmp_path, spec)
    _assert_failed_before_training(proc, folder, "annotations.json")


def test_batch_larger_than_the_dataset(synthetic_data, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path / "out", dataset={"batch_size": 64})
    proc, folder = _run(tmp_path, spec)
    _assert_failed_before_training(proc, folder, "dataset.batch_size")


def test_unwritable_results_dir(synthetic_data, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")
    spec = tiny_spec(synthetic_data, blocker / "out")
    proc = rtdetr("train", "-e", str(write_spec(tmp_path / "spec.yaml", spec)))
    assert proc.returncode != 0
    assert "results_dir" in proc.stderr and "cannot write" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_path_that_is_not_a_checkpoint(synthetic_data, tmp_path):
    bogus = tmp_path / "model.pth"
    bogus.write_text("hello")
    spec = tiny_spec(synthetic_data, tmp_path / "out", train={"resume_training_checkpoint_path": str(bogus)})
    proc, folder = _run(tmp_path, spec)
    _assert_failed_before_training(proc, folder, "train.resume_training_checkpoint_path", str(bogus))


def test_a_failing_run_leaves_a_finished_training_untouched(synthetic_data, tmp_path):
    """A data check (or a bad resume file) that fails in a folder holding a finished training writes
    nothing there: the error goes to stderr, the exit code is non-zero, status.json and
    experiment.yaml stay as the finished run left them."""
    spec = tiny_spec(synthetic_data, tmp_path / "out", train={"num_epochs": 1})
    proc, folder = _run(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert status_lines(folder)[-1]["status"] == "SUCCESS"
    before = {name: (folder / name).read_bytes() for name in ("status.json", "experiment.yaml")}
    names = sorted(p.name for p in folder.iterdir())

    bad_ids = tiny_spec(
        synthetic_data, tmp_path / "out", dataset={"num_classes": 3, "eval_class_ids": [1, 2]}
    )
    proc = rtdetr("train", "-e", str(write_spec(tmp_path / "bad_ids.yaml", bad_ids)))
    assert proc.returncode == 1 and "dataset.num_classes" in proc.stderr and "Traceback" not in proc.stderr
    assert "holds a finished run" in proc.stderr

    proc, _ = _run(tmp_path, spec, f"train.resume_training_checkpoint_path={tmp_path / 'bad_ids.yaml'}")
    assert proc.returncode != 0 and "train.resume_training_checkpoint_path" in proc.stderr

    assert {name: (folder / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in folder.iterdir()) == names
