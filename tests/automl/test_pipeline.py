"""The best trial's pipeline (evaluate -> export -> gen_trt_engine -> evaluate the deployed model) after
a real plain-training run, its MLflow child runs, ``automl pipeline`` on its own and failing steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from automl.pipeline.best_trial import pipeline_spec
from tests.conftest import data_sources, tiny_spec, write_spec

pytestmark = pytest.mark.slow

STEPS = ["evaluate", "export", "gen_trt_engine", "engine_evaluate"]


def automl(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def sweep(
    synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess]:
    """`automl run --policy off` on the tiny spec: one real training trial, then the pipeline."""
    root = tmp_path_factory.mktemp("pipeline")
    spec = write_spec(root / "spec.yaml", tiny_spec(synthetic_data, root / "unused"))
    proc = automl("run", "-e", str(spec), "--policy", "off", "--results-dir", str(root), "--name", "s")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return root / "s", proc


def step_runs(folder: Path) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder.parent / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("automl")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("automl.kind") == "sweep")
    steps = {r.data.tags["automl.step"]: r for r in runs if r.data.tags.get("automl.kind") == "step"}
    return {"client": client, "parent": parent, "steps": steps, "runs": runs}


def test_plain_training_runs_the_pipeline_in_best(sweep):
    folder, proc = sweep
    data = summary(folder)
    best, pipeline = data["best"], data["pipeline"]
    assert data["status"] == "FINISHED" and best["trial"] == 0
    assert [s for s in STEPS if s in pipeline] == STEPS
    assert pipeline["status"] == "FINISHED" and pipeline["failed"] == []
    assert pipeline["checkpoint"] == best["checkpoint"] and pipeline["data_source"] == "test"
    evaluate = pipeline["evaluate"]
    assert evaluate["state"] == "SUCCESS" and evaluate["data_source"] == "test"
    assert 0.0 <= evaluate["metrics"]["test_mAP50"] <= 1.0 and "test_mAP" in evaluate["metrics"]
    results = json.loads(Path(evaluate["results_file"]).read_text())
    assert results["checkpoint"] == best["checkpoint"] and results["images"] == 8  # the 8 test images
    assert Path(evaluate["folder"]) == folder.resolve() / "best" / "evaluate"
    export = pipeline["export"]
    assert export["state"] == "SUCCESS" and Path(export["onnx_file"]).is_file()
    assert Path(export["onnx_file"]) == folder.resolve() / "best" / "export" / "model.onnx"
    assert export["max_diff"] >= 0.0
    engine = pipeline["gen_trt_engine"]
    deployed = pipeline["engine_evaluate"]
    if engine["state"] == "SKIPPED":  # no TensorRT or GPU here: the ONNX model is evaluated instead
        assert "TensorRT" in engine["message"] or "GPU" in engine["message"]
        assert deployed["model"] == "onnx" and deployed["deployed_model"] == export["onnx_file"]
    else:
        assert engine["state"] == "SUCCESS" and Path(engine["engine_file"]).is_file()
        assert deployed["model"] == "engine"
    assert deployed["state"] == "SUCCESS" and deployed["data_source"] == "test"
    deployed_results = json.loads(Path(deployed["results_file"]).read_text())
    assert deployed_results["images"] == 8 and deployed_results["trt_engine"] == deployed["deployed_model"]
    # the two evaluations do not overwrite each other
    assert Path(deployed["results_file"]).parent != Path(evaluate["results_file"]).parent
    # the pipeline's spec: the best trial's, its results in best/, the export at the eval size (64x64)
    spec = yaml.safe_load((folder / "best" / "spec.yaml").read_text())
    assert spec["results_dir"] == str(folder.resolve() / "best")
    assert (spec["export"]["input_height"], spec["export"]["input_width"]) == (64, 64)
    for step in STEPS:
        assert f"pipeline {step}: {pipeline[step]['state']}" in proc.stdout
    shown = automl("status", str(folder))
    assert shown.returncode == 0, shown.stderr
    assert "pipeline of trial 0: FINISHED" in shown.stdout
    assert f"evaluate: SUCCESS test_mAP50={evaluate['metrics']['test_mAP50']:.4f}" in shown.stdout
    assert f"engine_evaluate: {deployed['state']}" in shown.stdout


def test_each_step_is_an_mlflow_child_run_of_the_sweep(sweep):
    folder, _ = sweep
    found = step_runs(folder)
    client, steps, parent = found["client"], found["steps"], found["parent"]
    assert sorted(steps) == sorted(STEPS)
    pipeline = summary(folder)["pipeline"]
    for name, run in steps.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["status"] == pipeline[name]["state"]
        assert run.info.status == "FINISHED"
    evaluate = steps["evaluate"].data.metrics
    assert evaluate["test_mAP50"] == pytest.approx(pipeline["evaluate"]["metrics"]["test_mAP50"])
    assert "seconds" in evaluate
    export = steps["export"]
    assert "max_diff" in export.data.metrics
    assert "model.onnx" in {a.path for a in client.list_artifacts(export.info.run_id)}
    assert "results.json" in {a.path for a in client.list_artifacts(steps["engine_evaluate"].info.run_id)}
    # the ONNX model joins the best trial's registered model version
    trial_run = next(r for r in found["runs"] if r.info.run_name == "trial-0000")
    assert "model/model.onnx" in {a.path for a in client.list_artifacts(trial_run.info.run_id, "model")}


def test_sync_replays_the_steps_like_the_live_run(sweep, tmp_path):
    folder, _ = sweep
    store = f"sqlite:///{tmp_path / 'replay.db'}"
    proc = automl("sync", str(folder), "--tracking-uri", store, "--experiment", "replay")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("replay").experiment_id])
    steps = {r.data.tags["automl.step"]: r for r in runs if r.data.tags.get("automl.kind") == "step"}
    pipeline = summary(folder)["pipeline"]
    assert sorted(steps) == sorted(STEPS)
    for name, run in steps.items():
        assert run.data.tags["status"] == pipeline[name]["state"]
    assert steps["evaluate"].data.metrics["test_mAP50"] == pytest.approx(
        pipeline["evaluate"]["metrics"]["test_mAP50"]
    )


def test_rerun_records_failed_steps_and_keeps_the_best(sweep):
    folder, _ = sweep
    before = summary(folder)["best"]
    # evaluate cannot read its test set; export is given an opset the exporter rejects
    proc = automl(
        "pipeline",
        str(folder),
        "dataset.test_data_sources.json_file=/nowhere/test.json",
        "export.opset_version=11",
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = summary(folder)
    assert data["best"] == before and data["status"] == "FINISHED"
    pipeline = data["pipeline"]
    assert pipeline["status"] == "FAILED" and pipeline["failed"] == ["evaluate", "export"]
    assert pipeline["evaluate"]["state"] == "FAILED" and "/nowhere/test.json" in pipeline["evaluate"]["error"]
    assert pipeline["export"]["state"] == "FAILED"
    assert pipeline["export"]["error"].startswith("export.opset_version: 11 is not supported")
    assert pipeline["overrides"] == [
        "dataset.test_data_sources.json_file=/nowhere/test.json",
        "export.opset_version=11",
    ]
    for later in ("gen_trt_engine", "engine_evaluate"):
        assert pipeline[later]["state"] == "SKIPPED"
        assert "export FAILED" in pipeline[later]["message"] and "opset_version" in pipeline[later]["message"]
    assert "failed steps: evaluate, export" in proc.stdout
    # the same MLflow runs, now marked failed, with the reason in the summary
    steps = step_runs(folder)["steps"]
    assert steps["evaluate"].info.status == "FAILED" and steps["export"].info.status == "FAILED"
    assert steps["gen_trt_engine"].info.status == "FINISHED"
    assert steps["gen_trt_engine"].data.tags["status"] == "SKIPPED"
    assert json.loads(automl("best", str(folder), "--json").stdout) == before


def test_no_pipeline_flag(synthetic_data, tmp_path):
    spec = write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 1})
    )
    proc = automl(
        *["run", "-e", str(spec), "--policy", "off", "--results-dir", str(tmp_path)],
        *["--name", "n", "--no-pipeline", "--no-track"],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary(tmp_path / "n")["pipeline"] == {} and not (tmp_path / "n" / "best").exists()
    assert "pipeline evaluate" not in proc.stdout and "pipeline:" not in proc.stdout


def test_missing_test_set_falls_back_to_val_and_says_so(synthetic_data, tmp_path):
    sources = data_sources(synthetic_data)
    spec = {
        "results_dir": "/trial",
        "dataset": {
            **sources,
            "test_data_sources": {"image_dir": "", "json_file": ""},
            "augmentation": {"eval_spatial_size": [96, 128]},
        },
        "train": {"results_dir": "/elsewhere"},
    }
    out, source = pipeline_spec(spec, tmp_path / "best")
    assert source == "val" and out["dataset"]["test_data_sources"] == sources["val_data_sources"]
    assert out["results_dir"] == str(tmp_path / "best") and "results_dir" not in out["train"]
    assert (out["export"]["input_height"], out["export"]["input_width"]) == (96, 128)
    kept, source = pipeline_spec({**spec, "dataset": sources, "export": {"input_width": 640}}, tmp_path)
    assert source == "test" and kept["export"] == {"input_width": 640}
