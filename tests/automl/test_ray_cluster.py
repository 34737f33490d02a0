"""`automl run --backend ray --ray-address ...` on a real 2-node Ray cluster on loopback.

The test starts a head node (1 CPU) and a second node (1 CPU and a custom resource of its own) with
``ray start``, runs 2 trials at once (1 CPU each, so one lands on each node), and stops the cluster
afterwards even when the test fails. Both nodes share the hostname on loopback, so placement is
asserted from the Ray node ids the trials recorded.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.automl.test_ray_backend import automl, live_trial_processes
from tests.conftest import tiny_spec, write_spec

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE = str(100 * 1024**2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([RAY, *args], capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture()
def cluster_env() -> dict[str, str]:
    """Token authentication (Ray's default for clusters): every node and the driver share one token."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture()
def two_node_cluster(cluster_env: dict[str, str]) -> Iterator[str]:
    pytest.importorskip("ray")
    env = {**os.environ, "OMP_NUM_THREADS": "1", **cluster_env}
    address = f"127.0.0.1:{_free_port()}"
    common = [
        *["--num-cpus", "1", "--num-gpus", "0"],
        *["--object-store-memory", OBJECT_STORE, "--node-ip-address", "127.0.0.1"],
    ]
    try:
        head = _ray(
            "start", "--head", "--port", address.split(":")[1], "--include-dashboard=false", *common, env=env
        )
        assert head.returncode == 0, head.stdout[-2000:] + head.stderr[-2000:]
        node = _ray("start", "--address", address, "--resources", '{"second_node": 1}', *common, env=env)
        assert node.returncode == 0, node.stdout[-2000:] + node.stderr[-2000:]
        _wait_for_nodes(address, 2, env)
        yield address
    finally:  # `ray stop` ends this machine's Ray processes: the cluster is gone even when the test fails
        _ray("stop", "--force", env=env)


def _wait_for_nodes(address: str, count: int, env: dict[str, str]) -> None:
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    deadline = time.monotonic() + 60
    while True:
        proc = subprocess.run(
            [sys.executable, "-c", probe, address], capture_output=True, text=True, env=env, timeout=120
        )
        if proc.returncode == 0 and proc.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        assert time.monotonic() < deadline, (
            f"the cluster did not reach {count} nodes: {proc.stdout} {proc.stderr[-2000:]}"
        )
        time.sleep(2)


def test_trials_run_on_both_nodes(
    two_node_cluster: str, cluster_env: dict[str, str], synthetic_data: Path, tmp_path: Path
) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 1})
    )
    proc = automl(
        *["run", "-e", str(spec), "--backend", "ray", "--ray-address", two_node_cluster],
        *["--algorithm", "random", "--trials", "2", "--max-epochs", "1", "--concurrency", "2"],
        *["--results-dir", str(tmp_path), "--name", "c1", "--seed", "1", "--no-track"],
        *["--no-pipeline", "--param", "train.optim.lr=1e-4:3e-3:log"],
        env=cluster_env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "c1" / "summary.json").read_text())
    assert data["status"] == "FINISHED" and data["backend"] == "ray"
    assert data["ray"]["address"] == two_node_cluster
    trials = data["trials"]
    assert len(trials) == 2 and all(t["state"] == "COMPLETE" for t in trials)
    assert len({t["node_id"] for t in trials}) == 2, [t.get("node_id") for t in trials]
    assert Path(data["best"]["checkpoint"]).is_file()
    assert not live_trial_processes(str(tmp_path))
