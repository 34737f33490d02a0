"""`automl run --action distill|quantize`: real `rtdetr distill` / `rtdetr quantize` trial processes on the
tiny preset and synthetic data, ranked by the action's metric."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, tiny_spec, write_spec

pytestmark = pytest.mark.slow

QUANTIZE_ROWS = json.loads((ROOT / "schemas" / "quantize.schema.json").read_text())["x_quantize_combinations"]


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
def trained(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for one epoch by `rtdetr train` (the teacher, and the model to quantize)."""
    folder = tmp_path_factory.mktemp("trained")
    spec = write_spec(
        folder / "spec.yaml", tiny_spec(synthetic_data, folder / "out", train={"num_epochs": 1})
    )
    proc = subprocess.run(
        [sys.executable, "-m", "model.cli", "train", "-e", str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoints = sorted((folder / "out" / "train").glob("model_epoch_*.pth"))
    assert checkpoints
    return checkpoints[-1]


def test_distill_sweep_runs_rtdetr_distill_trials_ranked_by_val_map50(synthetic_data, trained, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 2})
    spec["distill"] = {
        "teacher": dict(spec["model"]),
        "pretrained_teacher_model_path": str(trained),
        "bindings": [
            {"student_module_name": "srcs", "teacher_module_name": "srcs", "criterion": "IOU", "weight": 1.0}
        ],
    }
    spec_file = write_spec(tmp_path / "distill.yaml", spec)
    proc = automl(
        *["run", "--action", "distill", "-e", str(spec_file), "--trials", "2"],
        *["--max-epochs", "2", "--results-dir", str(tmp_path), "--name", "d"],
        *["--seed", "0", "--param", "train.optim.lr=1e-4:3e-3:log", "--no-track"],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = summary(tmp_path / "d")
    assert data["action"] == "distill" and data["metric"]["name"] == "val_mAP50"
    assert (
        data["status"] == "FINISHED" and data["algorithm"]["fidelity"] == "hyperband"
    )  # multi-fidelity as for train
    trials = data["trials"]
    assert len(trials) == 2 and all(t["state"] in ("COMPLETE", "PRUNED") for t in trials)
    for trial in trials:
        folder = Path(trial["folder"])
        lines = [json.loads(x) for x in (folder / "distill" / "status.json").read_text().splitlines()]
        assert any("val_mAP50" in (line.get("kpi") or {}) for line in lines)  # a distill run, not a train run
        assert not (folder / "train").exists()
        assert "distill -e" in (folder / "trial.log").read_text()
    best = data["best"]
    assert best["value"] == max(t["value"] for t in trials if t["state"] == "COMPLETE")
    assert best["metric"] == "val_mAP50"
    assert Path(best["checkpoint"]).is_file() and Path(best["checkpoint"]).parent.name == "distill"


def test_quantize_sweep_samples_only_allowed_combinations_and_ranks_by_quantized_map50(
    synthetic_data, trained, tmp_path
):
    spec = tiny_spec(synthetic_data, tmp_path / "unused")
    spec["dataset"]["quant_calibration_data_sources"] = dict(spec["dataset"]["train_data_sources"][0])
    spec["quantize"] = {
        "model_path": str(trained),
        "device": "cpu",
        "layers": [{"module_name": "*", "weights": {"dtype": "int8"}}],
    }
    spec_file = write_spec(tmp_path / "quantize.yaml", spec)
    proc = automl(
        *["run", "--action", "quantize", "-e", str(spec_file), "--trials", "3"],
        *["--results-dir", str(tmp_path), "--name", "q", "--seed", "1", "--no-track"],
        *["--setting", "run_baseline=true"],
        # modelopt's CPU calibration is too slow for a test; its rows are sampled in the test below
        *["--param", "quantize.backend=torchao"],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = summary(tmp_path / "q")
    assert data["action"] == "quantize" and data["metric"]["name"] == "test_mAP50"
    assert "quantized model" in data["metric"]["description"]
    assert data["algorithm"]["fidelity"] == "none"  # no epochs: nothing to stop early
    trials = data["trials"]
    assert len(trials) == 3 and all(t["state"] == "COMPLETE" for t in trials), trials
    allowed = {tuple(row) for row in QUANTIZE_ROWS["rows"] if row[0] == "torchao"}
    for trial in trials:
        folder = Path(trial["folder"])
        row = tuple(trial["params"]["quantize.combination"].split(" / "))
        assert row in allowed
        quantize = yaml.safe_load((folder / "spec.yaml").read_text())["quantize"]
        assert (quantize["backend"], quantize["mode"], quantize["algorithm"]) == row[:3]
        assert quantize["layers"][0]["weights"]["dtype"] == row[3]
        final = [json.loads(x) for x in (folder / "quantize" / "status.json").read_text().splitlines()][-1]
        assert final["status"] == "SUCCESS"
        assert trial["value"] == pytest.approx(float(final["kpi"]["test_mAP50"]))  # the quantized model's
    assert (
        trials[0]["params"]["quantize.combination"] == "torchao / weight_only_ptq / minmax / int8"
    )  # baseline
    best = data["best"]
    assert best["metric"] == "test_mAP50" and best["value"] == max(t["value"] for t in trials)
    assert Path(best["checkpoint"]).name.startswith("quantized_model_") and Path(best["checkpoint"]).is_file()


def test_quantize_sweep_refuses_an_early_stopping_algorithm_before_running(synthetic_data, trained, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path / "unused")
    spec["quantize"] = {
        "model_path": str(trained),
        "device": "cpu",
        "layers": [{"module_name": "*", "weights": {"dtype": "int8"}}],
    }
    spec_file = write_spec(tmp_path / "quantize.yaml", spec)
    proc = automl(
        *["run", "--action", "quantize", "-e", str(spec_file), "--algorithm", "hyperband"],
        *["--results-dir", str(tmp_path), "--name", "q", "--no-track"],
    )
    assert proc.returncode != 0
    assert "has no epochs" in proc.stderr and "automl_algorithm=tpe" in proc.stderr
    assert not (tmp_path / "q").exists()


def test_the_quantize_space_samples_whole_allowed_rows_of_every_backend():
    import optuna

    from automl.settings.action_profiles import apply_combination, quantize_space
    from automl.space.sampling import sample_params

    schema = json.loads((ROOT / "schemas" / "quantize.schema.json").read_text())
    base = {
        "quantize": {
            "backend": "torchao",
            "mode": "weight_only_ptq",
            "algorithm": "minmax",
            "layers": [{"module_name": "*", "weights": {"dtype": "int8"}}, {"module_name": "x"}],
        }
    }
    space = quantize_space(schema, base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(200):  # 17 rows: enough draws to reach every one
        spec, rest = apply_combination(base, sample_params(space, study.ask()))
        q = spec["quantize"]
        seen.add((q["backend"], q["mode"], q["algorithm"], q["layers"][0]["weights"]["dtype"]))
        assert rest == {} and "weights" not in q["layers"][1]  # a layer that quantizes no weights stays so
    # every sampled row is one TAO allows and rtdetr quantize runs, and the search reaches all of them
    assert seen == {tuple(row) for row in QUANTIZE_ROWS["rows"]}
    assert ("modelopt.pytorch", "static_ptq", "max", "int8") in seen
    assert not any(r[0] == "torchao" and (r[1], r[2]) != ("weight_only_ptq", "minmax") for r in seen)
    assert not any(r[0] == "modelopt.pytorch" and r[1] != "static_ptq" for r in seen)


def test_a_quantize_space_restriction_that_leaves_no_allowed_row_is_refused():
    from automl.errors import SettingError
    from automl.settings.action_profiles import quantize_space

    schema = json.loads((ROOT / "schemas" / "quantize.schema.json").read_text())
    base = {"quantize": {"layers": [{"module_name": "*", "weights": {"dtype": "int8"}}]}}
    with pytest.raises(SettingError, match="no allowed quantize combination"):
        quantize_space(schema, base, user_ranges={"quantize.backend": "torchao", "quantize.algorithm": "max"})
    with pytest.raises(SettingError, match="a quantize sweep searches the combination"):
        quantize_space(schema, base, user_ranges={"train.optim.lr": "1e-4:1e-3"})


@pytest.mark.parametrize(
    ("backend", "written"),
    [
        ("modelopt.pytorch", "quantized_model_modelopt.pytorch.pth"),
        ("modelopt.onnx", "quantized_model_modelopt_onnx.onnx"),
    ],
)
def test_a_modelopt_quantize_trial_completes_with_the_quantized_models_map50(
    synthetic_data, trained, tmp_path, backend, written
):
    """A modelopt row runs calibrated static PTQ (in PyTorch, or on the exported ONNX model); its result
    counts even if the process is slow to exit after writing it (the launcher stops it 30 s after its
    final SUCCESS line), and the trial's checkpoint is the quantized file."""
    spec = tiny_spec(synthetic_data, tmp_path / "unused")
    spec["dataset"]["quant_calibration_data_sources"] = dict(spec["dataset"]["train_data_sources"][0])
    spec["quantize"] = {
        "model_path": str(trained),
        "device": "cpu",
        "layers": [{"module_name": "*", "weights": {"dtype": "int8"}}],
    }
    spec_file = write_spec(tmp_path / "quantize.yaml", spec)
    proc = automl(
        *["run", "--action", "quantize", "-e", str(spec_file), "--trials", "1"],
        *["--results-dir", str(tmp_path), "--name", "m", "--seed", "0", "--no-track"],
        *["--param", f"quantize.backend={backend}", "--param", "quantize.algorithm=max"],
        *["--param", "quantize.layers[*].weights.dtype=int8"],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (trial,) = summary(tmp_path / "m")["trials"]
    assert trial["state"] == "COMPLETE"
    assert trial["params"]["quantize.combination"] == f"{backend} / static_ptq / max / int8"
    folder = Path(trial["folder"])
    final = [json.loads(x) for x in (folder / "quantize" / "status.json").read_text().splitlines()][-1]
    assert trial["value"] == pytest.approx(float(final["kpi"]["test_mAP50"]))
    assert Path(trial["checkpoint"]).name == written
