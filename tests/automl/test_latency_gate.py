"""Latency before training (``rtdetr latency``, ``automl run --max-latency-ms``): a network is
measured untrained on its deployable artefact (ONNX Runtime, batch 1, eval size), once per
architecture; a trial over the limit is recorded with its latency and never trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from automl.launch.latency_gate import LatencyGate, architecture_key
from tests.conftest import tiny_spec, write_spec

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def latency_sweep(
    data: Path, tmp_path: Path, trials: int, limit_ms: str
) -> tuple[subprocess.CompletedProcess, Path]:
    """A random search over the lr only (one architecture) on the tiny preset, with a latency limit."""
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(data, tmp_path / "unused"))
    sweep = tmp_path / "results" / "sweep"
    proc = run(
        "-m", "automl.cli", "run", "-e", str(spec), "--results-dir", str(sweep.parent), "--name", sweep.name,
        "--algorithm", "random", "--trials", str(trials), "--max-epochs", "1", "--no-pipeline", "--no-track",
        "--setting", "automl_hyperparameters=[train.optim.lr]", "--max-latency-ms", limit_ms,
    )  # fmt: skip
    return proc, sweep


def test_rtdetr_latency_measures_the_untrained_network_at_its_export_size(
    synthetic_data: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "out"))
    small = run("-m", "model.cli", "latency", "-e", str(spec), "--runs", "5", "--warmup", "1")
    assert small.returncode == 0, small.stderr
    result = json.loads(small.stdout.strip().splitlines()[-1])
    assert result["runtime"] == "onnxruntime-cpu" and result["batch"] == 1 and result["threads"] == 1
    assert result["size"] == [64, 64] and result["runs"] == 5
    assert 0 < result["min_ms"] <= result["latency_ms"] <= result["p90_ms"]
    # three rounds of 5 calls: the quietest round's median is the figure
    assert result["rounds"] == 3 and result["latency_ms"] == min(result["round_medians"])
    large = run(
        "-m",
        "model.cli",
        "latency",
        "-e",
        str(spec),
        "--runs",
        "5",
        "--warmup",
        "1",
        "dataset.augmentation.eval_spatial_size=[256,256]",
    )
    assert large.returncode == 0, large.stderr
    bigger = json.loads(large.stdout.strip().splitlines()[-1])
    assert bigger["size"] == [256, 256] and bigger["architecture"] != result["architecture"]
    assert bigger["latency_ms"] > result["latency_ms"]  # 16 times the pixels
    assert not (tmp_path / "out").exists()  # nothing is written where results go


def test_a_size_the_export_cannot_take_is_refused_with_the_key_and_the_fix(
    synthetic_data: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "out"))
    proc = run(
        "-m", "model.cli", "latency", "-e", str(spec), "dataset.augmentation.eval_spatial_size=[70,64]"
    )
    assert proc.returncode != 0
    assert "eval_spatial_size: got [70, 64]" in proc.stderr and "multiples of 32" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rtdetr_latency_times_an_exported_onnx_file_and_refuses_one_that_is_missing_or_broken(
    synthetic_data: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "out"))
    onnx = tmp_path / "model.onnx"
    from model.deploy.onnx_export import export_onnx
    from model.network.rtdetr import build_model
    from model.spec import resolve_spec

    network = build_model(resolve_spec("train", spec, [], check_paths=False)).eval()
    export_onnx(network, onnx, height=64, width=64, batch_size=1)
    timed = run("-m", "model.cli", "latency", "-e", str(spec), "--onnx", str(onnx), "--runs", "5")
    assert timed.returncode == 0, timed.stderr
    result = json.loads(timed.stdout.strip().splitlines()[-1])
    assert result["model"] == str(onnx) and result["size"] == [64, 64] and result["latency_ms"] > 0
    missing = run("-m", "model.cli", "latency", "-e", str(spec), "--onnx", str(tmp_path / "none.onnx"))
    assert missing.returncode != 0 and "none.onnx does not exist" in missing.stderr
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    refused = run("-m", "model.cli", "latency", "-e", str(spec), "--onnx", str(broken))
    assert refused.returncode != 0 and "ONNX Runtime cannot load it" in refused.stderr
    assert "Traceback" not in missing.stderr + refused.stderr


def test_rtdetr_latency_of_an_engine_names_what_is_missing(synthetic_data: Path, tmp_path: Path) -> None:
    """Here there is no TensorRT or GPU (the engine itself is timed by the gpu-marked test in
    tests/model/actions/test_gen_trt_engine.py)."""
    from model.deploy.trt_builder import tensorrt_missing

    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "out"))
    missing = run("-m", "model.cli", "latency", "-e", str(spec), "--engine", str(tmp_path / "none.engine"))
    assert missing.returncode != 0 and "none.engine does not exist" in missing.stderr
    both = run("-m", "model.cli", "latency", "-e", str(spec), "--engine", str(spec), "--onnx", str(spec))
    assert both.returncode != 0 and "--onnx or --engine, not both" in both.stderr
    if tensorrt_missing():
        engine = tmp_path / "model.engine"
        engine.write_bytes(b"not an engine")
        absent = run("-m", "model.cli", "latency", "-e", str(spec), "--engine", str(engine))
        assert absent.returncode != 0 and tensorrt_missing().split(";")[0] in absent.stderr
    assert "Traceback" not in missing.stderr + both.stderr


def test_the_architecture_key_ignores_training_values_and_weight_files() -> None:
    spec = {
        "model": {"dec_layers": 3, "pretrained_backbone_path": "/a.pth"},
        "train": {"optim": {"lr": 1e-3}},
        "dataset": {"num_classes": 4, "augmentation": {"eval_spatial_size": [96, 96]}},
    }
    same = {
        **spec,
        "model": {"dec_layers": 3, "pretrained_backbone_path": "/b.pth"},
        "train": {"optim": {"lr": 5e-4}},
    }
    deeper = {**spec, "model": {"dec_layers": 4}}
    assert architecture_key(spec) == architecture_key(same) != architecture_key(deeper)
    gate = LatencyGate(10.0, Path("/nonexistent"))
    assert gate.verdict({"latency_ms": 9.5}) is None
    reason = gate.verdict({"latency_ms": 12.25, "runtime": "onnxruntime-cpu", "threads": 2, "size": [96, 96]})
    assert reason == (
        "latency 12.25 ms (onnxruntime-cpu, 2 threads, batch 1, 96x96) is over --max-latency-ms 10; not trained"
    )


@pytest.mark.slow
def test_trials_over_the_limit_are_recorded_and_never_trained(synthetic_data: Path, tmp_path: Path) -> None:
    proc, sweep = latency_sweep(synthetic_data, tmp_path, 3, "0.001")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]  # no result: nothing trained
    assert "all 3 trials were over --max-latency-ms (the fastest measured" in proc.stdout
    assert "raise the limit or search smaller networks" in proc.stdout
    assert "latency ms" in proc.stdout  # the trials table shows each trial's latency
    summary = json.loads((sweep / "summary.json").read_text())
    trials = summary["trials"]
    assert len(trials) == 3 and summary["best"] is None
    for trial in trials:
        assert (trial["state"], trial["failure_class"]) == ("PRUNED", "infeasible")
        assert trial["latency_ms"] > 0.001 and "is over --max-latency-ms 0.001; not trained" in trial["error"]
        assert not (Path(trial["folder"]) / "train").exists()  # no training started
    cache = json.loads((sweep / "latency.json").read_text())
    assert len(cache) == 1  # one architecture (only the lr is searched): measured once
    logs = sorted(p.parent.name for p in (sweep / "trials").glob("*/latency.log"))
    assert logs == ["0000"]
    assert "all 3 trials failed" not in proc.stdout + proc.stderr  # infeasible is not a shared failure


@pytest.mark.slow
def test_trials_within_the_limit_train_and_keep_their_latency(synthetic_data: Path, tmp_path: Path) -> None:
    proc, sweep = latency_sweep(synthetic_data, tmp_path, 2, "100000")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((sweep / "summary.json").read_text())
    (measured,) = json.loads((sweep / "latency.json").read_text()).values()
    assert [t["state"] for t in summary["trials"]] == ["COMPLETE", "COMPLETE"]
    assert {t["latency_ms"] for t in summary["trials"]} == {measured["latency_ms"]}
    assert summary["best"]["value"] is not None


def test_the_latency_limit_is_refused_on_ray_with_the_fix() -> None:
    from automl.errors import SettingError
    from automl.settings.tao_settings import parse_settings

    with pytest.raises(
        SettingError, match="max_latency_ms: the latency constraint gates trials on the optuna"
    ):
        parse_settings({"max_latency_ms": 5, "backend": "ray"})
    with pytest.raises(SettingError, match="max_latency_ms"):
        parse_settings({"max_latency_ms": 0})
