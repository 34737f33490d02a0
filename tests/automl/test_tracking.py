"""MLflow tracking of a synthetic sweep in the default SQLite store: what a user sees in MLflow."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from automl.results.summary import write_json_atomic
from automl.tracking.plots import importances, write_plots
from automl.tracking.sync import sync_sweep
from automl.tracking.tracker import NullTracker, Tracker
from automl.tracking.ui import free_port
from tests.automl.synthetic_sweep import BEST, TRIALS, run_sweep

EXPERIMENT = "tracking-test"
METRICS = ("val_mAP50", "val_mAP", "val_loss", "train_loss", "lr", "epoch_seconds")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tracker, Path, dict, MlflowClient]:
    results = tmp_path_factory.mktemp("results")
    sweep = results / "sweep-one"
    tracker = Tracker.open(None, EXPERIMENT, sweep)
    assert isinstance(tracker, Tracker)
    summary = run_sweep(tracker, sweep)
    return tracker, sweep, summary, MlflowClient(f"sqlite:///{results / 'mlflow.db'}")


def runs_of(client: MlflowClient, experiment: str = EXPERIMENT) -> dict[str, object]:
    exp = client.get_experiment_by_name(experiment)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}


def metric_points(client: MlflowClient, experiment: str) -> int:
    return sum(
        len(client.get_metric_history(run.info.run_id, key))
        for run in runs_of(client, experiment).values()
        for key in run.data.metrics
    )


def test_default_store_is_sqlite_under_the_results_root(tracked) -> None:
    tracker, sweep, _, _ = tracked
    assert not tracker.degraded and tracker.missed == []
    assert tracker.uri == f"sqlite:///{sweep.parent.resolve() / 'mlflow.db'}"
    assert (sweep.parent / "mlflow.db").is_file() and (sweep.parent / "mlartifacts").is_dir()
    ids = json.loads((sweep / "tracking.json").read_text())
    assert ids["experiment"] == EXPERIMENT and ids["parent_run_id"] == tracker.parent_run_id
    assert set(ids["trials"]) == {str(n) for n in TRIALS}


def test_sweep_run_holds_settings_space_best_and_plots(tracked) -> None:
    tracker, _, _, client = tracked
    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.run_name == "sweep-one" and parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["policy.decision"] == "search" and tags["policy.reason"] == "--policy auto"
    assert tags["backend"] == "optuna" and tags["algorithm.sampler"] == "tpe"
    assert tags["best.trial"] == str(BEST)
    params = parent.data.params
    assert params["max_recommendations"] == "4" and params["early_stop.patience"] == "2"
    assert params["best.train.optim.lr"] == "0.0003" and params["best.model.backbone"] == "resnet_34"
    assert parent.data.metrics["best_val_mAP50"] == pytest.approx(0.52)
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"space.json", "space.txt", "summary.json", "plots"} <= names
    local = Path(client.download_artifacts(parent.info.run_id, "space.txt"))
    assert "train.optim.lr" in local.read_text() and "unused by AdamW" in local.read_text()
    plots = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "plots")}
    expected = {
        "optimization_history.png",
        "parallel_coordinates.png",
        "param_importances.png",
        "intermediate_values.png",
    }
    assert expected <= plots
    html = "search_plots.html" in plots
    assert html != tags["plots"].startswith("PNG only"), tags["plots"]


def test_trial_runs_hold_params_histories_states_and_files(tracked) -> None:
    tracker, _, _, client = tracked
    runs = runs_of(client)
    assert set(runs) == {"sweep-one", *(f"trial-{n:04d}" for n in TRIALS)}
    for number, (state, params, values) in TRIALS.items():
        run = client.get_run(tracker.run_id(number))
        assert run.info.run_name == f"trial-{number:04d}"
        assert run.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
        assert run.data.tags["trial"] == str(number) and run.data.tags["state"] == state
        assert run.data.params == {k: str(v) for k, v in params.items()}
        assert run.info.status == ("FAILED" if state == "FAIL" else "FINISHED")
        history = client.get_metric_history(run.info.run_id, "val_mAP50")
        assert [(m.step, round(m.value, 4)) for m in history] == list(enumerate(values))
        for key in METRICS:
            assert len(client.get_metric_history(run.info.run_id, key)) == len(values), key
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"spec.yaml", "train", "trial_log_tail.txt"} <= files
        tail = Path(client.download_artifacts(run.info.run_id, "trial_log_tail.txt")).read_text()
        assert tail.splitlines()[0] == "log line 100" and len(tail.splitlines()) == 200
    failed = client.get_run(tracker.run_id(3)).data.tags
    assert failed["failure_class"] == "crash" and "CUDA error" in failed["reason"]
    assert client.get_run(tracker.run_id(BEST)).data.metrics["best_val_mAP50"] == pytest.approx(0.52)


def test_best_model_is_registered_with_links_to_sweep_and_trial(tracked) -> None:
    tracker, _, _, client = tracked
    versions = client.search_model_versions(f"name = '{EXPERIMENT}-rtdetr'")
    assert len(versions) == 1
    version = versions[0]
    assert version.run_id == tracker.run_id(BEST)
    assert version.tags["automl.sweep.loop"] == "sweep-one" and version.tags["automl.trial"] == str(BEST)
    assert version.tags["parent_run_id"] == tracker.parent_run_id
    model_files = {Path(a.path).name for a in client.list_artifacts(version.run_id, "model")}
    assert model_files == {"model_epoch_002.pth"}


def test_pipeline_step_is_a_child_run_and_onnx_joins_the_model(tracked, tmp_path: Path) -> None:
    tracker, _, summary, client = tracked
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    tracker.pipeline_step("export", {"export_seconds": 2.5}, [onnx], "SUCCESS")
    tracker.pipeline_step("gen_trt_engine", {}, [], "FAILURE")
    step = runs_of(client)["export"]
    assert step.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    assert step.info.status == "FINISHED" and step.data.metrics["export_seconds"] == 2.5
    assert {a.path for a in client.list_artifacts(step.info.run_id)} == {"model.onnx"}
    assert runs_of(client)["gen_trt_engine"].info.status == "FAILED"
    summary = {**summary, "pipeline": {"export": {"onnx_file": str(onnx)}}}
    tracker.finish_sweep(summary)
    model_files = {Path(a.path).name for a in client.list_artifacts(tracker.run_id(BEST), "model")}
    assert model_files == {"model_epoch_002.pth", "model.onnx"}
    assert len(client.search_model_versions(f"name = '{EXPERIMENT}-rtdetr'")) == 1


def test_resumed_sweep_continues_the_same_runs_without_duplicates(tracked) -> None:
    tracker, sweep, summary, client = tracked
    before = (len(runs_of(client)), metric_points(client, EXPERIMENT))
    again = Tracker.open(None, EXPERIMENT, sweep)
    again.start_sweep({**summary, "status": "RUNNING"})
    assert again.parent_run_id == tracker.parent_run_id
    assert client.get_run(tracker.parent_run_id).info.status == "RUNNING"
    again.trial_started(1, TRIALS[1][1], sweep / "trials" / "0001")
    again.trial_epoch(1, 2, {"val_mAP50": 0.52, "train_loss": 2.48})  # replayed after a resume
    again.trial_finished(json.loads((sweep / "summary.json").read_text())["trials"][1])
    again.finish_sweep(summary)
    assert again.run_id(1) == tracker.run_id(1)
    assert (len(runs_of(client)), metric_points(client, EXPERIMENT)) == before
    assert client.get_run(tracker.parent_run_id).info.status == "FINISHED"


def test_sync_logs_an_untracked_sweep_once(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep-untracked"
    run_sweep(NullTracker(), sweep)
    summary = json.loads((sweep / "summary.json").read_text())
    summary["pipeline"] = {"evaluate": {"status": "SUCCESS", "val_mAP50": 0.5, "kpi": {"val_mAP": 0.3}}}
    write_json_atomic(sweep / "summary.json", summary)
    report = sync_sweep(sweep, None, "synced")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = runs_of(client, "synced")
    assert set(runs) == {"sweep-untracked", "evaluate", *(f"trial-{n:04d}" for n in TRIALS)}
    assert report.runs_created == len(runs) and report.steps == ["evaluate"]
    assert runs["evaluate"].data.metrics == {"val_mAP50": 0.5, "kpi.val_mAP": 0.3}
    history = client.get_metric_history(runs["trial-0001"].info.run_id, "val_mAP50")
    assert [m.value for m in history] == pytest.approx(TRIALS[1][2])
    assert runs["trial-0003"].info.status == "FAILED"
    assert len(client.search_model_versions("name = 'synced-rtdetr'")) == 1
    points = metric_points(client, "synced")
    second = sync_sweep(sweep)  # store and experiment come from tracking.json now
    assert (second.runs_created, second.metric_points) == (0, 0)
    assert (len(runs_of(client, "synced")), metric_points(client, "synced")) == (len(runs), points)


def test_unreachable_store_warns_once_and_never_raises(tmp_path: Path, caplog) -> None:
    sweep = tmp_path / "sweep-dead"
    caplog.set_level(logging.INFO, logger="automl.tracking.tracker")
    started = time.monotonic()
    tracker = Tracker.open(f"http://127.0.0.1:{free_port()}", EXPERIMENT, sweep)
    run_sweep(tracker, sweep)
    assert time.monotonic() - started < 30
    assert tracker.degraded and tracker.missed
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "automl sync" in warnings[0].getMessage()


def test_importances_rank_the_parameter_that_drives_the_score_first() -> None:
    trials = [
        {"number": i, "state": "COMPLETE", "value": 0.1 * i, "params": {"lr": 10.0**-i, "noise": (i * 7) % 3}}
        for i in range(1, 6)
    ]
    shares = importances({"trials": trials})
    assert next(iter(shares)) == "lr" and sum(shares.values()) == pytest.approx(1.0)
    assert importances({"trials": trials[:1]}) == {}


def test_plots_are_drawn_from_the_sweep_folder_alone(tracked, tmp_path: Path) -> None:
    _, sweep, summary, _ = tracked
    files, note = write_plots(summary, sweep, tmp_path / "plots")
    assert all(f.stat().st_size > 1000 for f in files)
    assert {f.suffix for f in files} == ({".png"} if note.startswith("PNG only") else {".png", ".html"})


def test_tracking_uri_none_turns_tracking_off(tmp_path: Path) -> None:
    tracker = Tracker.open("none", EXPERIMENT, tmp_path / "sweep-off")
    assert type(tracker) is NullTracker
    run_sweep(tracker, tmp_path / "sweep-off")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "sweep-off" / "tracking.json").exists()


def test_ui_without_a_store_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from automl.errors import AutomlError
    from automl.tracking.ui import serve_ui

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(AutomlError, match=r"no MLflow store here \(mlflow.db is missing\)"):
        serve_ui(tmp_path, 0)
