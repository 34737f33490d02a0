"""The sweep's view of a spec.

``automl`` never imports ``model`` (DESIGN section 2): the spec is resolved and validated by the
model's own ``rtdetr validate`` in a child process, so a sweep and a single ``rtdetr`` action accept
exactly the same specs with exactly the same messages. The resolved spec comes back as JSON.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from automl.errors import AutomlError, SpecRejected

__all__ = ["get_dotted", "resolve_spec", "rtdetr_command", "set_dotted"]


def rtdetr_command() -> list[str]:
    """How to start the model's CLI: the same interpreter, so the same installation."""
    return [sys.executable, "-m", "model.cli"]


def resolve_spec(
    spec_path: str | Path | None = None,
    overrides: Iterable[str] = (),
    *,
    action: str = "train",
    check_paths: bool = True,
    cwd: str | Path | None = None,
) -> dict[str, Any]:
    """Resolve and validate a spec with ``rtdetr validate``; raises SpecRejected with its message."""
    cmd = [*rtdetr_command(), "validate", "--format", "json", "--action", action]
    if spec_path is not None:
        cmd += ["-e", str(spec_path)]
    if not check_paths:
        cmd.append("--no-path-check")
    cmd += list(overrides)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AutomlError(f"could not run `rtdetr validate`: {exc}") from None
    if proc.returncode == 2:
        raise SpecRejected(re.sub(r"^error: ", "", proc.stderr.strip()))
    if proc.returncode != 0:
        raise AutomlError(f"`rtdetr validate` failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def set_dotted(spec: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``spec`` with the dotted ``key`` (e.g. ``train.optim.lr``) set to ``value``."""
    out = copy.deepcopy(dict(spec))
    node: dict[str, Any] = out
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
    return out


def get_dotted(spec: Mapping[str, Any], key: str, default: Any = None) -> Any:
    node: Any = spec
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node
