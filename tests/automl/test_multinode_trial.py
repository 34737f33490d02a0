"""A trial that spans two torchrun nodes (both on loopback) runs through `automl run`.

The orchestrator launches node 0 of the trial with the rendezvous from its environment
(MASTER_ADDR/MASTER_PORT, as TAO's multi-node launch); the second node joins with the trial's own
spec (`<sweep>/trials/0000/spec.yaml`, on a shared disk in a real cluster) and NODE_RANK=1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from automl.launch.rendezvous import rendezvous_env
from tests.conftest import tiny_spec, write_spec

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rendezvous_comes_from_the_environment_only_for_several_nodes():
    one = {"train": {"num_nodes": 1}}
    two = {"train": {"num_nodes": 2}}
    assert rendezvous_env(one, {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"}) == {}
    assert rendezvous_env(two, {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"}) == {
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "1234",
    }
    assert rendezvous_env(two, {}) == {"MASTER_PORT": "29500"}  # TAO's default port
    assert rendezvous_env(one, {"NUM_NODES": "3", "MASTER_ADDR": "h0"}) == {
        "MASTER_ADDR": "h0",
        "MASTER_PORT": "29500",
    }


def test_a_two_node_trial_runs_through_automl_run(synthetic_data: Path, tmp_path: Path):
    spec = write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 1})
    )
    rendezvous = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    env = {**os.environ, **rendezvous}
    orchestrator = subprocess.Popen(
        [
            *[sys.executable, "-m", "automl.cli", "run", "-e", str(spec)],
            *["train.num_nodes=2", "--policy", "off", "--results-dir", str(tmp_path)],
            *["--name", "mn", "--no-track", "--no-pipeline"],
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    trial_spec = tmp_path / "mn" / "trials" / "0000" / "spec.yaml"
    deadline = time.monotonic() + 120
    while not trial_spec.is_file():
        assert orchestrator.poll() is None, orchestrator.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the trial never started"
        time.sleep(0.5)
    node1 = subprocess.run(
        [sys.executable, "-m", "model.cli", "train", "-e", str(trial_spec)],
        env={**env, "NODE_RANK": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out, _ = orchestrator.communicate(timeout=300)
    assert orchestrator.returncode == 0, out[-3000:]
    assert node1.returncode == 0, node1.stdout[-2000:] + node1.stderr[-2000:]
    assert "Launching 2 processes (2 node(s) x 1)" in node1.stdout
    summary = json.loads((tmp_path / "mn" / "summary.json").read_text())
    (trial,) = summary["trials"]
    assert trial["state"] == "COMPLETE" and summary["status"] == "FINISHED"
    log = (tmp_path / "mn" / "trials" / "0000" / "trial.log").read_text()
    assert "Launching 2 processes (2 node(s) x 1)" in log  # node 0, started by the orchestrator
    assert "parameters in sync across 2 ranks" in log  # both nodes trained one model
    assert Path(summary["best"]["checkpoint"]).is_file()
