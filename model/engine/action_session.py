"""What every action does around its work: the results folder, experiment.yaml, the torchrun
re-launch, status on failure.

A training action (train, distill) in a folder holding a finished run leaves that run's files alone
until the new run starts (see ``model.engine.status``): a run that fails before its STARTED line
writes neither status.json nor experiment.yaml; a run that starts moves both aside
(``status.run<N>.json``, ``experiment.run<N>.yaml``) and writes its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from model.config.defaults import spec_section
from model.engine.status import FAILURE, StatusLogger
from model.errors import ModelError

__all__ = [
    "action_results_dir",
    "action_session",
    "failure_status",
    "launch",
    "prepare_results_dir",
    "write_experiment_yaml",
]

TRAINING_ACTIONS = ("train", "distill")  # their folders keep a finished run apart (model.engine.status)


def action_results_dir(spec: Mapping[str, Any], action: str) -> Path:
    """``<action>.results_dir`` when set, else ``<results_dir>/<action>`` (TAO's rule)."""
    section = spec.get(action) if isinstance(spec.get(action), Mapping) else {}
    own = section.get("results_dir") if section else None
    if own:
        return Path(own)
    base = spec.get("results_dir") or "results"
    return Path(base) / action


def prepare_results_dir(path: Path) -> Path:
    """Create the folder and prove it is writable before any compute starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_test.{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ModelError(
            f"results_dir: cannot write to {path} ({exc.strerror or exc}); choose a writable folder "
            f"with results_dir=/path or fix its permissions"
        ) from None
    return path


def write_experiment_yaml(path: Path, spec: Mapping[str, Any]) -> None:
    (path / "experiment.yaml").write_text(yaml.safe_dump(dict(spec), sort_keys=False), encoding="utf-8")


def _new_experiment_yaml(path: Path, spec: Mapping[str, Any], number: int) -> None:
    """A new run starts where run ``number`` finished: keep that run's experiment.yaml beside its status."""
    previous = path / "experiment.yaml"
    if previous.is_file():
        os.replace(previous, path / f"experiment.run{number}.yaml")
    write_experiment_yaml(path, spec)


def launch(spec: Mapping[str, Any], section: str, argv: Sequence[str], worker: Callable[[Any], int]) -> int:
    """Run ``worker(spec)`` here, or re-run ``rtdetr <argv>`` under torchrun when the world of
    ``<section>.num_gpus`` x ``num_nodes`` (and TAO's launch variables) has more than one process."""
    import subprocess

    from model.engine.distributed import plan_launch, torchrun_command, under_torchrun

    plan = plan_launch(spec_section(spec, section))
    if plan.world > 1 and not under_torchrun():
        cmd, env = torchrun_command(plan, argv)
        print(
            f"Launching {plan.world} processes ({plan.num_nodes} node(s) x {plan.procs_per_node}) with torchrun",
            flush=True,
        )
        return subprocess.run(cmd, env=env, check=False).returncode
    return worker(spec)


@contextmanager
def action_session(
    spec: Mapping[str, Any], action: str, started: str | None
) -> Iterator[tuple[Path, Any, Any]]:
    """One worker of an action: its results folder (checked writable), its place in the world, its
    status.json (STARTED ``started`` when given; FAILURE with the message of any error) and
    experiment.yaml. Yields ``(results_dir, world, status)``; leaves the process group on exit."""
    from model.engine.distributed import init_world, shutdown_world
    from model.engine.status import STARTED

    results_dir = prepare_results_dir(Path(action_results_dir(spec, action)))
    world = init_world()
    status = StatusLogger(results_dir, enabled=world.is_main, keep_finished=action in TRAINING_ACTIONS)
    try:
        with failure_status(status):
            if status.holds_finished_run():
                status.on_new_file = lambda number: _new_experiment_yaml(results_dir, spec, number)
            elif world.is_main:
                write_experiment_yaml(results_dir, spec)
            if started:
                status.write(STARTED, started)
            yield results_dir, world, status
    finally:
        shutdown_world()


@contextmanager
def failure_status(status: StatusLogger) -> Iterator[None]:
    """Any error escaping the action becomes a FAILURE line with its message, then propagates."""
    try:
        yield
    except ModelError as exc:
        _write_failure(status, str(exc))
        raise
    except Exception as exc:
        if not getattr(exc, "status_written", False):
            _write_failure(status, f"{type(exc).__name__}: {exc}")
        raise


def _write_failure(status: StatusLogger, message: str) -> None:
    """The FAILURE line, unless the disk is full (or read-only): then the error itself is what the
    user sees, and status.json keeps its last whole line."""
    try:
        status.write(FAILURE, message)
    except OSError as exc:
        print(
            f"note: could not write the FAILURE line to {status.path} ({exc.strerror or exc})",
            file=sys.stderr,
        )
