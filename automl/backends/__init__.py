"""Search backends behind one interface (:mod:`automl.backends.base`), chosen by name.

``optuna`` (the default), ``ray`` (Ray Tune) and ``none`` (plain training). The table maps a name
to where its class lives, imported only when chosen: ``import automl`` imports neither Optuna nor
Ray. A new backend is one module and one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from automl.backends.base import AskTellBackend, Backend, SweepPlan, TrialRequest
from automl.errors import SettingError

__all__ = ["BACKENDS", "AskTellBackend", "Backend", "SweepPlan", "TrialRequest", "make_backend"]

BACKENDS: dict[str, str] = {
    "optuna": "automl.backends.optuna.backend:OptunaBackend",
    "ray": "automl.backends.ray_tune.backend:RayTuneBackend",
    "none": "automl.backends.single:SingleTrialBackend",
}


def make_backend(name: str, plan: SweepPlan, **options: Any) -> Backend:
    if name not in BACKENDS:
        raise SettingError(
            f"backend: {name!r} is not available; use {' or '.join(n for n in BACKENDS if n != 'none')}"
        )
    module, _, attr = BACKENDS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(plan, **options)
