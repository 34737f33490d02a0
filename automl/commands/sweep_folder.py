"""Where ``automl run`` puts a new sweep, checked before anything is computed, and the summary.json
document a sweep starts with (also what a rebuild writes when summary.json was lost).

``--name`` is one folder name inside ``--results-dir``: no path separator, no ``..``, not empty.
``--results-dir`` is a folder, or a path whose first existing part is one (it is created).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from automl.errors import SettingError
from automl.settings.action_profiles import action_profile
from automl.settings.tao_settings import AutomlSettings
from automl.space.params import SearchSpace

__all__ = ["check_sweep_location", "make_sweep_folder", "summary_document"]

_SEPARATORS = {"/", "\\", os.sep, os.altsep or "/", "\0"}


def _check_name(name: str) -> None:
    if not name.strip() or ".." in name or name.strip() == "." or _SEPARATORS & set(name):
        raise SettingError(
            f"--name: {name!r} is not one folder name (the sweep goes to --results-dir/NAME); give a name "
            f"without '/', '\\', '..' or other path separators, e.g. --name lr-sweep-1"
        )


def _check_results_dir(results_dir: str) -> None:
    path = Path(results_dir)
    for part in (path, *path.parents):  # the first part that exists must be a folder we may write in
        if not part.exists():
            continue
        if not part.is_dir():
            raise SettingError(
                f"--results-dir: {results_dir!r}: {part} is a file, not a folder; give a folder (created "
                f"when missing) where the sweep folders go"
            )
        if not os.access(part, os.W_OK | os.X_OK):
            raise SettingError(
                f"--results-dir: {results_dir!r}: no permission to write in {part}; give another folder"
            )
        return


def check_sweep_location(results_dir: str, name: str | None) -> None:
    """Refuse a ``--results-dir``/``--name`` pair the sweep cannot be written to; writes nothing."""
    _check_results_dir(results_dir)
    if name is None:
        return
    _check_name(name)
    folder = Path(results_dir) / name
    if folder.exists() and not folder.is_dir():
        raise SettingError(f"--name: {folder} is a file, not a sweep folder; choose another --name")
    if (folder / "summary.json").exists():
        raise SettingError(
            f"--name: {folder} already holds a sweep; continue it with `automl run --resume {folder}` "
            f"or choose another --name"
        )


def make_sweep_folder(results_dir: str, name: str | None) -> Path:
    """``<results_dir>/<name or a timestamp>``, created (after :func:`check_sweep_location`)."""
    name = name or time.strftime("sweep-%Y%m%d-%H%M%S")
    check_sweep_location(results_dir, name)
    folder = Path(results_dir) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingError(
            f"--results-dir: could not create {folder} ({exc.strerror}); give another folder"
        ) from None
    return folder


def _metric_description(settings: AutomlSettings, action: str) -> str:
    profile = action_profile(action)
    return profile.metric_description if settings.metric == profile.metric else settings.metric


def summary_document(
    name: str,
    settings: AutomlSettings,
    config: dict[str, Any],
    space: SearchSpace | None,
    max_epochs: int,
    policy: dict[str, Any],
) -> dict[str, Any]:
    """summary.json as a sweep starts: ``policy`` is {decision (auto|off), reason, message}."""
    action = str(config.get("action") or "train")
    search = space is not None
    objectives = {"objectives": [{"name": n, "direction": d} for n, d in settings.objectives]}
    return {
        **(objectives if settings.objectives else {}),
        "name": name,
        "status": "RUNNING",
        "started": time.time(),
        "action": action,
        "metric": {
            "name": settings.metric,
            "direction": settings.direction,
            "description": _metric_description(settings, action),
        },
        "policy": policy,
        "backend": settings.backend if search else "none",
        "algorithm": {
            "sampler": settings.algorithm,
            "fidelity": settings.fidelity,
            "name": settings.algorithm_name,
        }
        if search
        else None,
        "settings": asdict(settings),
        "config": config,
        "space": space.as_dict() if space is not None else None,
        "max_epochs": max_epochs,
        "trials": [],
        "best": None,
        "pipeline": {},
    }
