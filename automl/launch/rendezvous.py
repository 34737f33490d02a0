"""Where the nodes of a trial that spans several machines meet (torchrun's rendezvous)."""

from __future__ import annotations

import os
from typing import Any

from automl.spec import get_dotted

__all__ = ["rendezvous_env"]


def rendezvous_env(base: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    """For a trial spanning several nodes, the rendezvous the other nodes join: ``MASTER_ADDR`` and
    ``MASTER_PORT`` from this environment (TAO's default port 29500) instead of a free local port."""
    env = dict(os.environ if env is None else env)
    nodes = int(env.get("NUM_NODES") or get_dotted(base, "train.num_nodes", 1) or 1)
    if nodes <= 1:
        return {}
    out = {"MASTER_PORT": env.get("MASTER_PORT") or "29500"}
    if env.get("MASTER_ADDR"):
        out["MASTER_ADDR"] = env["MASTER_ADDR"]
    return out
