"""bench/gpu_check.sh, the prepared GPU verification script (issue 18), checked where there is no GPU.

Its ``--dry-run`` trains nothing: it validates every spec the GPU run would pass (``rtdetr validate``,
``automl validate``, the CLI parsers), runs the helper scripts on the CPU and writes the same
``gpu_check.json``. These tests run it as a user does and read what it reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"
SECTIONS = [
    "environment",
    "gpu_tests",
    "train_precisions",
    "nccl",
    "automl_gpu_placement",
    "tensorrt",
    "speed",
]


def gpu_check(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        "OUT": str(out),
        "GPU_CHECK_PYTHON": sys.executable,
        "GPU_CHECK_FROM_SOURCE": "1",
        **env,
    }
    for name in ("GPU_CHECK_SECTIONS", "GPU_CHECK_EXTRA_OVERRIDES", "GPU_CHECK_KEEP_WORK"):
        if name not in env:
            environ.pop(name, None)
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=environ,
    )


def report(out: Path) -> dict:
    return json.loads((out / "gpu_check.json").read_text())


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("gpu_check_dry")
    return gpu_check(out, "--dry-run"), out


def test_the_dry_run_passes_and_lists_all_seven_sections(dry_run) -> None:
    proc, out = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    data = report(out)
    assert data["mode"] == "dry_run"
    assert [s["name"] for s in data["sections"]] == SECTIONS
    assert {s["name"]: s["state"] for s in data["sections"]} == dict.fromkeys(SECTIONS, "DRY_RUN")
    assert sum(s["budget_s"] for s in data["sections"]) <= data["total_budget_s"] <= 8 * 60
    for section in data["sections"]:
        assert (out / section["log"]).is_file(), section["log"]
        assert section["seconds"] is not None
    markdown = (out / "gpu_check.md").read_text()
    for number, name in enumerate(SECTIONS, 1):
        assert f"| {number} | {name} | DRY_RUN |" in markdown
    assert "gpu_check done in" in proc.stdout and "7 DRY_RUN" in proc.stdout
    # nothing was trained: no status.json or checkpoint came back, and the scratch folder is gone
    assert not list(out.rglob("status.json")) and not list(out.rglob("*.pth"))
    scratch = next(line.split("scratch ")[1] for line in proc.stdout.splitlines() if "; scratch " in line)
    assert scratch.startswith(("/", ".")) and not Path(scratch).exists()


def test_the_dry_run_validated_every_command_it_would_run(dry_run) -> None:
    proc, out = dry_run
    sections = {s["name"]: s for s in report(out)["sections"]}
    checks = {name: s["figures"].get("checks", []) for name, s in sections.items()}
    commands = {name: "\n".join(s["figures"].get("commands", [])) for name, s in sections.items()}
    for name in SECTIONS:
        assert checks[name] and all(c.startswith("ok: ") for c in checks[name]), (name, checks[name])
    assert "ok: bash -n bench/gpu_check.sh" in checks["environment"]
    for precision in ("fp32", "bf16", "fp16"):
        assert f"ok: rtdetr validate: train.precision={precision} run" in checks["train_precisions"]
        assert f"train.precision={precision}" in commands["train_precisions"]
    assert "--train 200 --val 50 --test 50 --size 128" in commands["train_precisions"]
    assert "ok: rtdetr validate: the 2-process DDP run (train.num_gpus=2)" in checks["nccl"]
    assert "ok: nccl_check.py under torchrun (gloo on the CPU)" in checks["nccl"]
    assert "--trials 3 --max-epochs 2" in commands["automl_gpu_placement"]
    assert "ok: automl validate: the sweep's base spec" in checks["automl_gpu_placement"]
    for data_type in ("FP16", "INT8"):
        assert f"ok: rtdetr validate --action gen_trt_engine ({data_type})" in checks["tensorrt"]
        assert f"gen_trt_engine.tensorrt.data_type={data_type}" in commands["tensorrt"]
        assert f"evaluate.trt_engine=$WORK/deploy/model_{data_type}.engine" in proc.stdout
    assert "gen_trt_engine.tensorrt.calibration.cal_image_dir=" in commands["tensorrt"]
    assert "ok: speed.py torch --check (CPU, 128 px)" in checks["speed"]
    assert "configs/rtdetr_r18.yaml" in commands["speed"]
    # the plan is printed with the time budgets
    assert "would run: " in proc.stdout and "section 6 tensorrt: budget 95s" in proc.stdout


def test_a_wrong_key_fails_the_dry_run_and_is_named(tmp_path: Path) -> None:
    proc = gpu_check(
        tmp_path,
        "--dry-run",
        GPU_CHECK_EXTRA_OVERRIDES="train.num_epochz=2",
        GPU_CHECK_SECTIONS="3 6",
    )
    assert proc.returncode != 0
    assert "train.num_epochz: unknown key; did you mean train.num_epochs?" in proc.stdout
    sections = {s["name"]: s for s in report(tmp_path)["sections"]}
    for name in ("train_precisions", "tensorrt"):
        assert sections[name]["state"] == "FAILED"
        assert "train.num_epochz: unknown key" in sections[name]["reason"]
        assert sections[name]["log_tail"]
    assert sections["environment"]["state"] == "SKIPPED"
    assert "GPU_CHECK_SECTIONS" in sections["environment"]["reason"]


def test_the_dry_run_refuses_an_unknown_argument(tmp_path: Path) -> None:
    proc = gpu_check(tmp_path, "--dryrun")
    assert proc.returncode == 2
    assert "unknown argument '--dryrun'" in proc.stderr
    assert not (tmp_path / "gpu_check.json").exists()


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None or os.path.exists("/dev/nvidia0"),
    reason="a GPU machine: the script would really train here",
)
def test_without_a_gpu_the_gpu_run_says_what_it_skipped_and_why(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the script would really train here")
    # section 2 would run the gpu-marked tests of this suite: left out
    proc = gpu_check(tmp_path, GPU_CHECK_SECTIONS="1 3 4 5 6 7")
    assert proc.returncode == 1
    sections = {s["name"]: s for s in report(tmp_path)["sections"]}
    assert sections["environment"]["state"] == "FAILED"
    assert "torch.cuda.is_available() is False" in sections["environment"]["reason"]
    assert sections["environment"]["figures"]["modules"]["torch"]["ok"] is True
    assert sections["gpu_tests"]["state"] == "SKIPPED"
    for name in ("train_precisions", "nccl", "automl_gpu_placement", "speed"):
        assert sections[name]["state"] == "SKIPPED", name
        assert "torch.cuda.is_available() is False" in sections[name]["reason"], name
    assert sections["tensorrt"]["state"] == "SKIPPED"
    assert "tensorrt does not import" in sections["tensorrt"]["reason"] or (
        "torch.cuda.is_available() is False" in sections["tensorrt"]["reason"]
    )
    assert "1 FAILED, 6 SKIPPED" in proc.stdout
