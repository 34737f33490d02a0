"""``rtdetr <action> --parent JOB``: which file of a parent job fills which input, and the errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model.errors import ModelError
from model.parent import find_parent, resolve_parent
from tests.conftest import ROOT, tiny_spec, write_spec


def status_line(epoch: int, map50: float | None) -> str:
    kpi = {"train_loss": "3.0"} if map50 is None else {"train_loss": "3.0", "val_mAP50": str(map50)}
    return json.dumps({"status": "RUNNING", "epoch": epoch, "max_epoch": 2, "kpi": kpi})


def fake_train(folder: Path, scores: dict[int, float | None], saved: list[int] | None = None) -> Path:
    """A results folder as `rtdetr train` leaves it: train/model_epoch_NNN.pth, the latest link, status.json."""
    train = folder / "train"
    train.mkdir(parents=True)
    for epoch in saved if saved is not None else scores:
        (train / f"model_epoch_{epoch:03d}.pth").write_bytes(b"weights")
    if saved is None or saved:
        (train / "rtdetr_model_latest.pth").symlink_to(f"model_epoch_{max(saved or scores):03d}.pth")
    lines = [json.dumps({"status": "STARTED"})] + [status_line(e, v) for e, v in scores.items()]
    (train / "status.json").write_text("\n".join([*lines, json.dumps({"status": "SUCCESS"})]) + "\n")
    return folder


def fake_sweep(folder: Path) -> Path:
    """An `automl run` sweep folder: summary.json naming the best trial, and the pipeline's files."""
    trial = fake_train(folder / "trials" / "0001", {0: 0.2, 1: 0.5})
    (folder / "best" / "export").mkdir(parents=True)
    (folder / "best" / "export" / "model.onnx").write_bytes(b"onnx")
    summary = {
        "status": "FINISHED",
        "best": {
            "trial": 1,
            "value": 0.5,
            "best_epoch": 1,
            "metric": "val_mAP50",
            "folder": str(trial),
            "checkpoint": str(trial / "train" / "model_epoch_001.pth"),
        },
        "pipeline": {
            "export": {"state": "SUCCESS", "onnx_file": str(folder / "best" / "export" / "model.onnx")}
        },
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def spec_file(tmp_path: Path, spec: dict | None = None) -> Path:
    return write_spec(tmp_path / "user.yaml", spec or {"results_dir": str(tmp_path / "new")})


def files(filled: dict) -> dict[str, str]:
    return {key: Path(path).name for key, (path, _why) in filled.items()}


def test_best_epoch_by_val_map50_and_latest_on_request(tmp_path):
    job = fake_train(tmp_path / "job", {0: 0.1, 1: 0.6, 2: 0.4})
    spec = spec_file(tmp_path)
    best = resolve_parent("evaluate", job, spec_path=spec)
    assert files(best) == {"evaluate.checkpoint": "model_epoch_001.pth"}
    assert "best epoch 1, val_mAP50 0.6000" in best["evaluate.checkpoint"][1]
    latest = resolve_parent("evaluate", job, "latest", spec_path=spec)
    assert files(latest) == {"evaluate.checkpoint": "model_epoch_002.pth"}
    # the train/ folder itself works as a parent too
    assert files(resolve_parent("export", job / "train", spec_path=spec)) == {
        "export.checkpoint": "model_epoch_001.pth"
    }


def test_best_epoch_counts_the_finished_runs_a_later_run_continued(tmp_path):
    """A run continuing a finished one starts a fresh status.json; the earlier epochs are in status.run1.json."""
    job = fake_train(tmp_path / "job", {0: 0.1, 1: 0.6})
    train = job / "train"
    (train / "status.json").rename(train / "status.run1.json")
    (train / "model_epoch_002.pth").write_bytes(b"weights")
    (train / "status.json").write_text(
        "\n".join([json.dumps({"status": "STARTED", "run": 2}), status_line(2, 0.4)]) + "\n"
    )
    best = resolve_parent("evaluate", job, spec_path=spec_file(tmp_path))
    assert files(best) == {"evaluate.checkpoint": "model_epoch_001.pth"}


def test_best_skips_deleted_checkpoints_and_falls_back_to_latest(tmp_path):
    kept = fake_train(tmp_path / "kept", {0: 0.3, 1: 0.6, 2: 0.4}, saved=[0, 2])
    assert files(resolve_parent("inference", kept, spec_path=spec_file(tmp_path))) == {
        "inference.checkpoint": "model_epoch_002.pth"
    }
    unscored = fake_train(tmp_path / "unscored", {0: None, 1: None})
    filled = resolve_parent("evaluate", unscored, spec_path=spec_file(tmp_path))
    assert files(filled) == {"evaluate.checkpoint": "model_epoch_001.pth"}
    assert "no validated epoch" in filled["evaluate.checkpoint"][1]


def test_keys_the_user_set_are_kept(tmp_path):
    job = fake_train(tmp_path / "job", {0: 0.1, 1: 0.6})
    in_file = spec_file(tmp_path, {"evaluate": {"checkpoint": "/mine.pth"}})
    assert resolve_parent("evaluate", job, spec_path=in_file) == {}
    blank = spec_file(tmp_path, {"evaluate": {"checkpoint": "???"}})
    assert files(resolve_parent("evaluate", job, spec_path=blank)) == {
        "evaluate.checkpoint": "model_epoch_001.pth"
    }
    by_override = resolve_parent("export", job, spec_path=blank, overrides=["export.checkpoint=/mine.pth"])
    assert by_override == {}
    # TAO's shorthand keys count as set too
    assert resolve_parent("quantize", job, spec_path=blank, overrides=["quantize_model=/q.pth"]) == {}


def test_every_action_gets_its_own_keys(tmp_path):
    job = fake_train(tmp_path / "job", {0: 0.1, 1: 0.6})
    spec = spec_file(tmp_path)
    assert files(resolve_parent("quantize", job, spec_path=spec)) == {
        "quantize.model_path": "model_epoch_001.pth"
    }
    assert files(resolve_parent("distill", job, spec_path=spec)) == {
        "distill.pretrained_teacher_model_path": "model_epoch_001.pth"
    }
    # train: fine-tune from another job, resume (latest checkpoint) when the parent is its own folder
    assert files(resolve_parent("train", job, spec_path=spec)) == {
        "train.pretrained_model_path": "model_epoch_001.pth"
    }
    own = spec_file(tmp_path, {"results_dir": str(job)})
    resumed = resolve_parent("train", job, spec_path=own)
    assert files(resumed) == {"train.resume_training_checkpoint_path": "model_epoch_001.pth"}
    assert resumed["train.resume_training_checkpoint_path"][1].startswith("resume")


def test_sweep_and_deployed_parents(tmp_path):
    sweep = fake_sweep(tmp_path / "sweep")
    spec = spec_file(tmp_path)
    assert files(resolve_parent("evaluate", sweep, spec_path=spec)) == {
        "evaluate.checkpoint": "model_epoch_001.pth"
    }
    assert "trial 1" in resolve_parent("export", sweep, spec_path=spec)["export.checkpoint"][1]
    assert files(resolve_parent("gen_trt_engine", sweep, spec_path=spec)) == {
        "gen_trt_engine.onnx_file": "model.onnx"
    }
    # an export folder: its ONNX model is what evaluate and gen_trt_engine run
    export = sweep / "best" / "export"
    assert files(resolve_parent("evaluate", export, spec_path=spec)) == {"evaluate.trt_engine": "model.onnx"}
    assert files(resolve_parent("gen_trt_engine", export, spec_path=spec)) == {
        "gen_trt_engine.onnx_file": "model.onnx"
    }
    engine_dir = tmp_path / "engine"
    engine_dir.mkdir()
    (engine_dir / "model.engine").write_bytes(b"plan")
    assert files(resolve_parent("inference", engine_dir, spec_path=spec)) == {
        "inference.trt_engine": "model.engine"
    }
    assert find_parent(engine_dir).kind == "gen_trt_engine"


def test_a_parent_without_the_needed_file_is_a_clear_error(tmp_path, synthetic_data):
    job = fake_train(tmp_path / "job", {0: 0.1, 1: 0.6})
    spec = spec_file(tmp_path)
    with pytest.raises(
        ModelError,
        match=r"no ONNX model for gen_trt_engine\.onnx_file.*best checkpoint .*model_epoch_001\.pth.*rtdetr export --parent",
    ):
        resolve_parent("gen_trt_engine", job, spec_path=spec)
    onnx_only = tmp_path / "export"
    onnx_only.mkdir()
    (onnx_only / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(ModelError, match=r"no checkpoint for export\.checkpoint.*ONNX model .*model\.onnx"):
        resolve_parent("export", onnx_only, spec_path=spec)
    with pytest.raises(ModelError, match=r"not a job folder; it holds label_map\.txt"):
        resolve_parent("evaluate", synthetic_data, spec_path=spec)  # a dataset, not a job
    with pytest.raises(ModelError, match="no such folder"):
        resolve_parent("evaluate", tmp_path / "missing", spec_path=spec)
    skipped = tmp_path / "skipped"
    skipped.mkdir()
    (skipped / "status.json").write_text(
        json.dumps({"status": "SKIPPED", "message": "TensorRT is not installed"})
    )
    with pytest.raises(ModelError, match=r"status\.json ends: SKIPPED TensorRT is not installed"):
        resolve_parent("evaluate", skipped, spec_path=spec)


@pytest.fixture(scope="module")
def trained(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real tiny `rtdetr train` run (2 epochs) and its spec."""
    folder = tmp_path_factory.mktemp("parent_job")
    spec = write_spec(folder / "spec.yaml", tiny_spec(synthetic_data, folder / "job"))
    proc = rtdetr("train", "-e", str(spec))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder / "job", spec


def rtdetr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )


def test_evaluate_with_parent_runs_the_best_trained_checkpoint(trained, tmp_path):
    job, spec = trained
    proc = rtdetr("evaluate", "-e", str(spec), "--parent", str(job), f"results_dir={tmp_path}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    scores = {}
    for raw in (job / "train" / "status.json").read_text().splitlines():
        line = json.loads(raw)
        if line.get("status") == "RUNNING" and "val_mAP50" in line.get("kpi", {}):
            scores[line["epoch"]] = float(line["kpi"]["val_mAP50"])
    best = max(scores, key=lambda e: (scores[e], -e))
    expected = job / "train" / f"model_epoch_{best:03d}.pth"
    assert f"--parent: evaluate.checkpoint={expected}" in proc.stdout
    results = json.loads((tmp_path / "evaluate" / "results.json").read_text())
    assert results["checkpoint"] == str(expected)
    experiment = yaml.safe_load((tmp_path / "evaluate" / "experiment.yaml").read_text())
    assert experiment["evaluate"]["checkpoint"] == str(expected)
    # --checkpoint latest: the last epoch's file
    latest = rtdetr(
        "evaluate",
        "-e",
        str(spec),
        "--parent",
        str(job),
        "--checkpoint",
        "latest",
        f"results_dir={tmp_path}/l",
    )
    assert latest.returncode == 0, latest.stderr[-2000:]
    assert json.loads((tmp_path / "l" / "evaluate" / "results.json").read_text())["checkpoint"].endswith(
        "model_epoch_001.pth"
    )


def test_cli_errors_name_the_parent_and_what_it_holds(trained, tmp_path):
    job, spec = trained
    proc = rtdetr("gen_trt_engine", "-e", str(spec), "--parent", str(job))
    assert proc.returncode == 1
    assert f"--parent {job} (train folder): no ONNX model for gen_trt_engine.onnx_file" in proc.stderr
    assert "Traceback" not in proc.stderr
    alone = rtdetr("evaluate", "-e", str(spec), "--checkpoint", "latest")
    assert alone.returncode == 1 and "give --parent too" in alone.stderr
