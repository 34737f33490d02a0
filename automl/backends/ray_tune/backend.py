"""The Ray Tune backend: Tune runs the trials (on a local Ray or a cluster, ``--ray-address``) and
the driver's callback hands every trial event to the sweep loop (:mod:`automl.backends.ray_tune.tuner`)."""

from __future__ import annotations

from automl.backends.base import Backend, SweepHooks, SweepPlan
from automl.errors import SettingError

__all__ = ["RayTuneBackend"]


class RayTuneBackend(Backend):
    name = "ray"

    def __init__(self, plan: SweepPlan):
        super().__init__(plan)
        if plan.space is None:
            raise SettingError(
                "--backend ray runs searches only; plain training (--policy off) uses the default backend"
            )
        self.resume = False

    def open(self, hooks: SweepHooks, *, resume: bool) -> None:
        self.resume = resume  # Tune restores its own state (Tuner.restore) when the run starts

    def run(self, hooks: SweepHooks) -> str | None:
        from automl.backends.ray_tune.tuner import run_ray_sweep

        return run_ray_sweep(hooks, address=self.plan.ray_address, create=not self.resume)
