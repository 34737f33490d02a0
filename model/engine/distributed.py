"""torchrun and DDP the way TAO launches RT-DETR.

The ``rtdetr`` process that a user starts decides the world: ``train.num_gpus`` processes per node and
``train.num_nodes`` nodes, overridden by TAO's environment (``NUM_NODES`` or ``WORLD_SIZE`` = nodes,
``NUM_GPUS`` = processes per node, ``NODE_RANK`` (copied to ``RANK`` when unset), ``MASTER_ADDR``,
``MASTER_PORT`` default 29500, ``TAO_VISIBLE_DEVICES`` -> ``CUDA_VISIBLE_DEVICES``). When that world has
more than one process it re-executes itself under ``torchrun``; every worker then joins a process
group (NCCL on GPUs, gloo on the CPU).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "LaunchPlan",
    "World",
    "all_gather_objects",
    "all_reduce_mean",
    "broadcast_object",
    "init_world",
    "plan_launch",
    "shutdown_world",
    "torchrun_command",
    "under_torchrun",
]


@dataclass(frozen=True)
class LaunchPlan:
    num_nodes: int
    procs_per_node: int
    node_rank: int
    master_addr: str
    master_port: int
    visible_devices: str | None

    @property
    def world(self) -> int:
        return self.num_nodes * self.procs_per_node


def under_torchrun(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return "LOCAL_RANK" in env and "TORCHELASTIC_RUN_ID" in env


def plan_launch(section: Mapping[str, Any], env: Mapping[str, str] | None = None) -> LaunchPlan:
    """The world for an action from its spec section (``train``/``evaluate``...) and TAO's variables."""
    env = os.environ if env is None else env
    num_gpus = int(section.get("num_gpus") or 1)
    gpu_ids = list(section.get("gpu_ids") or [])
    num_nodes = int(section.get("num_nodes") or 1)
    if gpu_ids and num_gpus != len(gpu_ids):
        num_gpus = max(num_gpus, len(gpu_ids))
        if len(gpu_ids) != num_gpus:
            gpu_ids = list(range(num_gpus))
    if env.get("NUM_NODES"):
        num_nodes = int(env["NUM_NODES"])
    elif env.get("WORLD_SIZE") and not under_torchrun(env):
        num_nodes = int(env["WORLD_SIZE"])
    if env.get("NUM_GPUS"):
        num_gpus = int(env["NUM_GPUS"])
    visible = env.get("TAO_VISIBLE_DEVICES")
    if visible is None and gpu_ids and torch.cuda.is_available():
        visible = ",".join(str(i) for i in gpu_ids[:num_gpus])
    node_rank = int(env.get("NODE_RANK") or env.get("RANK") or 0)
    return LaunchPlan(
        num_nodes=num_nodes,
        procs_per_node=num_gpus,
        node_rank=node_rank,
        master_addr=env.get("MASTER_ADDR", "127.0.0.1" if num_nodes == 1 else "localhost"),
        master_port=int(env.get("MASTER_PORT") or 29500),
        visible_devices=visible,
    )


def torchrun_command(plan: LaunchPlan, argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The torchrun command line and environment that re-run ``rtdetr <argv>`` on every worker."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={plan.num_nodes}",
        f"--nproc-per-node={plan.procs_per_node}",
        f"--node-rank={plan.node_rank}",
        f"--master-addr={plan.master_addr}",
        f"--master-port={plan.master_port}",
        "-m",
        "model.cli",
        *argv,
    ]
    env = dict(os.environ)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(name, None)  # torchrun sets them per worker; TAO's WORLD_SIZE meant nodes
    if plan.visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = plan.visible_devices
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, plan.procs_per_node))))
    return cmd, env


@dataclass(frozen=True)
class World:
    rank: int
    local_rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(prefer_cuda: bool = True) -> World:
    """Join the process group torchrun prepared (or a world of one)."""
    size = int(os.environ.get("WORLD_SIZE", "1")) if under_torchrun() else 1
    rank = int(os.environ.get("RANK", "0")) if size > 1 else 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if size > 1 else 0
    use_cuda = prefer_cuda and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return World(rank=rank, local_rank=local_rank, size=size, device=device)


def shutdown_world() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: float, world: World) -> float:
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world.size


def all_gather_objects(obj: Any, world: World) -> list[Any]:
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, world: World) -> Any:
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
