"""The search methods a replay compares, as the AutoML settings a user would give, and one call
that replays a method on a curve table.

Each method is ``automl run``'s real Optuna backend with those settings. The replay gives every
method the same budget in epochs: a method that does not stop trials early is asked for as many
trials as the budget holds full trials, one that does may start up to four times as many (TPE's
start-up trials grow with that number: ``min(10, trials // 4)``), and PBT, whose trials are short
segments of a lineage, as many as the budget holds segments. ``auto`` is what
``automl run --policy auto`` runs when no algorithm is given.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from automl.backends import make_backend
from automl.backends.base import AskTellBackend, SweepPlan
from automl.errors import SettingError
from automl.replay.curves import CurveTable
from automl.replay.simulator import ReplayResult, replay_sweep
from automl.replay.surrogate import Surrogate
from automl.settings.tao_settings import parse_settings

__all__ = ["METHODS", "replay_method"]

# method -> AutoML settings (TAO names)
METHODS: dict[str, dict[str, Any]] = {
    "random": {"automl_algorithm": "random"},
    "tao_hyperband": {"automl_algorithm": "hyperband", "sampler": "random"},  # TAO's own Hyperband
    "tpe": {"automl_algorithm": "tpe"},
    "bayesian": {"automl_algorithm": "bayesian"},  # Optuna's GPSampler
    "hyperband": {"automl_algorithm": "hyperband"},  # TPE + Hyperband
    "asha": {"automl_algorithm": "asha"},  # TPE + successive halving
    "bohb": {"automl_algorithm": "bohb"},
    "pbt": {"automl_algorithm": "pbt"},
    "auto": {},  # --policy auto with no --algorithm
    "hyperband_baseline": {"automl_algorithm": "hyperband", "run_baseline": True},
    "asha_baseline": {"automl_algorithm": "asha", "run_baseline": True},
    "tpe_baseline": {"automl_algorithm": "tpe", "run_baseline": True},
    "pbt_baseline": {"automl_algorithm": "pbt", "run_baseline": True},
}


def method_settings(method: str, table: CurveTable, epoch_budget: int, seed: int) -> dict[str, Any]:
    if method not in METHODS:
        raise SettingError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    pairs = dict(METHODS[method])
    epochs = table.max_epochs
    full_trials = max(2, epoch_budget // epochs)
    # methods that stop trials early may start more trials in the same epochs (up to 4x)
    stops_early = method not in ("random", "tpe", "bayesian")
    pairs["automl_max_recommendations"] = full_trials * (4 if stops_early else 1)
    if METHODS[method].get("automl_algorithm") == "pbt":
        # a population that fits the budget; founders train a quarter of the table's epochs, and
        # every clone continues a top trial for another quarter
        pairs["automl_population_size"] = max(2, min(8, full_trials // 2))
        pairs["automl_eval_interval"] = max(1, epochs // 4)
        pairs["automl_max_recommendations"] = max(2, epoch_budget // pairs["automl_eval_interval"])
    pairs["seed"] = seed
    return pairs


def replay_method(
    method: str,
    table: CurveTable,
    *,
    epoch_budget: int,
    workers: int = 1,
    seed: int = 0,
    surrogate: Surrogate | None = None,
    folder: Path | None = None,
) -> ReplayResult:
    """Replay ``method`` on ``table`` with ``workers`` simulated workers until ``epoch_budget``."""
    surrogate = surrogate or Surrogate(table)
    settings = parse_settings(method_settings(method, table, epoch_budget, seed))
    with tempfile.TemporaryDirectory(prefix="replay-", dir=folder) as tmp:
        plan = SweepPlan(
            folder=Path(tmp) / f"{method}-{seed}",
            base_spec={},
            space=table.space,
            settings=settings,
            # PBT's founders train one interval, then lineages grow up to the table's last epoch
            max_epochs=settings.eval_interval if settings.algorithm == "pbt" else table.max_epochs,
            concurrency=workers,
        )
        plan.folder.mkdir(parents=True)
        backend = make_backend(settings.backend, plan)
        if not isinstance(backend, AskTellBackend):
            raise SettingError(
                f"backend: {settings.backend!r} runs its own trials; a replay drives ask/tell backends"
            )
        return replay_sweep(backend, plan, surrogate, workers=workers, epoch_budget=epoch_budget, seed=seed)
