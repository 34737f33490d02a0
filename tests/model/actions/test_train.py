"""`rtdetr train` as users run it: TAO's results layout, resume, SIGTERM, divergence, torchrun worlds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_spec, write_spec

pytestmark = pytest.mark.slow


def rtdetr(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def status_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "status.json").read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_train_writes_tao_layout_then_resumes(synthetic_data, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "out"))
    proc = rtdetr("train", "-e", str(spec))
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "out" / "train"
    lines = status_lines(folder)
    assert [line["status"] for line in lines] == ["STARTED", "RUNNING", "RUNNING", "SUCCESS"]
    assert lines[1]["epoch"] == 0 and lines[1]["max_epoch"] == 1
    assert set(lines[1]["kpi"]) >= {"train_loss", "val_loss", "val_mAP", "val_mAP50"}
    assert all(isinstance(v, str) for v in lines[1]["kpi"].values())
    assert lines[-1]["best_checkpoint"].endswith(f"model_epoch_{lines[-1]['best_epoch']:03d}.pth")
    names = sorted(p.name for p in folder.iterdir())
    assert {
        "model_epoch_000.pth",
        "model_epoch_001.pth",
        "rtdetr_model_latest.pth",
        "experiment.yaml",
    } <= set(names)
    assert os.readlink(folder / "rtdetr_model_latest.pth") == "model_epoch_001.pth"
    ckpt = torch.load(folder / "model_epoch_001.pth", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["tao_model"] == "rtdetr"
    assert {"model", "optimizer", "scheduler", "spec", "metrics"} <= set(ckpt)
    assert "epoch 1/1 step" in proc.stdout and "eta" in proc.stdout  # progress line

    # Running again with more epochs resumes from the latest checkpoint in the folder. The first run
    # finished, so this one is run 2: its lines start a fresh status.json, run 1's are kept aside.
    finished = (folder / "status.json").read_bytes()
    proc = rtdetr("train", "-e", str(spec), "train.num_epochs=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming from" in proc.stdout and "epoch 2, step" in proc.stdout
    assert (folder / "status.run1.json").read_bytes() == finished
    assert "num_epochs: 2" in (folder / "experiment.run1.yaml").read_text()
    assert "num_epochs: 3" in (folder / "experiment.yaml").read_text()
    lines = status_lines(folder)
    assert [line["status"] for line in lines] == ["STARTED", "RUNNING", "SUCCESS"]
    assert lines[0]["run"] == 2 and lines[0]["previous_status"] == "status.run1.json"
    assert lines[1]["epoch"] == 2 and lines[-1]["best_checkpoint"]


def test_dry_run_takes_one_step_and_saves_nothing(synthetic_data, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path / "out", train={"num_epochs": 5, "is_dry_run": True})
    proc = rtdetr("train", "-e", str(write_spec(tmp_path / "spec.yaml", spec)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "out" / "train"
    assert [line["status"] for line in status_lines(folder)] == ["STARTED", "RUNNING", "SUCCESS"]
    assert "step 1/" in proc.stdout and "step 2/" not in proc.stdout
    assert not list(folder.glob("model_epoch_*.pth"))


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(synthetic_data, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path / "out", train={"num_epochs": 50}, dataset={"batch_size": 2})
    path = write_spec(tmp_path / "spec.yaml", spec)
    proc = subprocess.Popen(
        [sys.executable, "-m", "model.cli", "train", "-e", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    status = tmp_path / "out" / "train" / "status.json"
    deadline = time.time() + 180
    while time.time() < deadline and not (status.exists() and '"RUNNING"' in status.read_text()):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    last = status_lines(status.parent)[-1]
    assert last["status"] == "FAILURE" and "interrupted by SIGTERM" in last["message"]
    assert (status.parent / "rtdetr_model_latest.pth").exists()
    assert "Traceback" not in err


def test_diverging_loss_stops_with_failure(synthetic_data, tmp_path):
    """Weights that produce a non-finite loss (a corrupt pretrained file) stop training at once."""
    from model import build_model

    spec = tiny_spec(synthetic_data, tmp_path / "out", train={"num_epochs": 2})
    weights = build_model(spec).state_dict()
    weights = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()
    }
    torch.save({"model": weights}, tmp_path / "nan.pth")
    spec["train"]["pretrained_model_path"] = str(tmp_path / "nan.pth")
    proc = rtdetr("train", "-e", str(write_spec(tmp_path / "spec.yaml", spec)))
    assert proc.returncode == 1
    last = status_lines(tmp_path / "out" / "train")[-1]
    assert last["status"] == "FAILURE" and "loss diverged at epoch 0 step 0" in last["message"]
    assert "loss diverged" in proc.stderr
    assert not list((tmp_path / "out" / "train").glob("model_epoch_*.pth"))


def test_two_gloo_processes_keep_identical_weights(synthetic_data, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path / "out", train={"num_epochs": 1, "num_gpus": 2})
    proc = rtdetr(
        "train", "-e", str(write_spec(tmp_path / "spec.yaml", spec)), env={"MASTER_PORT": str(free_port())}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Launching 2 processes" in proc.stdout
    assert "parameters in sync across 2 ranks" in proc.stdout
    lines = status_lines(tmp_path / "out" / "train")
    assert [line["status"] for line in lines].count("STARTED") == 1  # rank 0 alone writes


def test_two_nodes_on_loopback(synthetic_data, tmp_path):
    spec = tiny_spec(synthetic_data, tmp_path / "out", train={"num_epochs": 1})
    path = write_spec(tmp_path / "spec.yaml", spec)
    port = str(free_port())
    procs = []
    for node in (0, 1):
        env = {
            **os.environ,
            "NUM_NODES": "2",
            "NODE_RANK": str(node),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "model.cli", "train", "-e", str(path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    assert "parameters in sync across 2 ranks" in results[0][0]
    assert status_lines(tmp_path / "out" / "train")[-1]["status"] == "SUCCESS"
