"""Ray itself for the Ray Tune backend: join a cluster or start a local Ray, a watchdog that stops
a local Ray when its driver is killed, and each trial's CPUs and GPUs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from automl.backends.base import SweepPlan
from automl.errors import SettingError

__all__ = ["OBJECT_STORE_BYTES", "guard_local_ray", "start_ray", "trial_resources"]

OBJECT_STORE_BYTES = 200 * 1024**2


def start_ray(address: str | None, concurrency: int) -> bool:
    """Join ``address`` or start a local Ray; True when we started it (and so shut it down)."""
    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/TensorBoard files per trial
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as exc:  # Ray raises several kinds (connection, auth, version)
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise SettingError(
                f"--ray-address {address}: cannot join the Ray cluster ({first[:300]}); start it with `ray start "
                f"--head`, give this process the cluster's token (RAY_AUTH_TOKEN) if it uses one, or leave "
                f"--ray-address out for a local Ray"
            ) from None
        return True
    cpus = max(concurrency, os.cpu_count() or 1)
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        ignore_reinit_error=True,
        log_to_driver=False,
        configure_logging=True,
        logging_level=logging.ERROR,
    )
    return True


_WATCHDOG = """
import os, signal, sys, time
parent = int(sys.argv[1])
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    if os.getppid() != parent:
        break
    time.sleep(1)
for pid in map(int, sys.argv[2:]):
    try:
        os.kill(pid, signal.SIGKILL)  # the head processes ignore a SIGTERM while their driver is gone
    except ProcessLookupError:
        pass
"""


def _parent_pid(proc_entry: Path) -> int:
    """The parent's pid from /proc/<pid>/stat (the field after the state, past the command's parentheses)."""
    return int((proc_entry / "stat").read_text().rsplit(")", 1)[1].split()[1])


def _children(parents: set[int]) -> set[int]:
    out: set[int] = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and _parent_pid(entry) in parents:
                out.add(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def guard_local_ray() -> subprocess.Popen | None:
    """A local Ray outlives a driver killed with SIGKILL (its head processes and workers go on, even
    training): a tiny watchdog stops them when this process is gone. Raylet's workers, and through
    the parent-death signal the trials' processes, end with them."""
    try:
        from ray._private import worker as ray_worker

        node = ray_worker._global_node  # the local node ray.init started
        if node is None:
            return None
        pids = {getattr(proc, "pid", None) or proc.process.pid for _, proc in node.live_processes()}
        pids |= _children({os.getpid(), *pids})  # the raylet's agents and workers, Ray's helpers
    except Exception:  # other Ray versions: no watchdog, Ray's own atexit cleanup remains
        return None
    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), *map(str, pids)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def trial_resources(plan: SweepPlan, gpus_per_trial: int) -> tuple[int, int]:
    """(CPUs, GPUs) per trial: the spec's ``train.num_gpus`` when the cluster has GPUs, and a CPU share."""
    import ray

    total = ray.cluster_resources()
    gpus = gpus_per_trial if total.get("GPU", 0) >= gpus_per_trial > 0 else 0
    nodes = max(1, len([n for n in ray.nodes() if n.get("Alive")]))
    per_node_cpus = int(total.get("CPU", 1)) // nodes
    cpus = max(1, per_node_cpus // max(1, plan.concurrency // nodes or 1))
    return cpus, gpus
