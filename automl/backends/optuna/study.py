"""The Optuna side of a sweep: storage, sampler and pruner from the AutoML settings.

Storage is a journal file inside the sweep folder by default (``<sweep>/optuna.journal``), or any
Optuna storage URL (``--storage postgresql://...``, ``sqlite:///...``, ``redis://...`` for a journal
on Redis), so more processes or machines can join with ``automl worker``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna

from automl.backends.storage_url import check_storage, journal_path, shown
from automl.errors import SettingError
from automl.results.objective import Direction
from automl.settings.tao_settings import AutomlSettings

__all__ = [
    "DEFINITION_ATTR",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "open_study",
    "study_directions",
    "told_values",
]

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_storage(storage: str | None, sweep_dir: Path) -> Any:
    """The study storage (checked first: :func:`automl.backends.storage_url.check_storage`); one that
    cannot be opened (a server that is down, a file that is no database) is a :class:`SettingError`."""
    check_storage(storage)
    journal = journal_path(storage, sweep_dir)
    try:
        if journal is not None:
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            return JournalStorage(JournalFileBackend(str(journal)))
        if storage and storage.startswith("redis://"):
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalRedisBackend

            return JournalStorage(JournalRedisBackend(storage))
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5: not the user's concern
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(str(storage), heartbeat_interval=60, grace_period=180)
    except Exception as exc:  # SQLAlchemy's, Redis's or the file system's reason, kept in the message
        where = journal if journal is not None else shown(str(storage))
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise SettingError(
            f"--storage: could not open the study storage {where} ({type(exc).__name__}: {reason}); check "
            f"that it is reachable and is an Optuna storage, or use another --storage"
        ) from exc


class TopFraction:
    """TPE's ``gamma``: how many of ``n`` observed points count as good (picklable, for Ray)."""

    def __init__(self, percent: float):
        self.percent = percent

    def __call__(self, n: int) -> int:
        return max(1, math.ceil(self.percent / 100.0 * n))


def make_sampler(settings: AutomlSettings) -> optuna.samplers.BaseSampler:
    seed = settings.seed
    if settings.algorithm in ("random", "pbt"):  # PBT's founders are random points (optuna_pbt)
        return optuna.samplers.RandomSampler(seed=seed)
    sampler: optuna.samplers.BaseSampler
    if settings.algorithm == "bayesian":
        startup = min(10, max(2, settings.max_recommendations // 3))
        sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    elif settings.algorithm_name == "bohb":
        # BOHB's model is TPE's: the top automl_top_n_percent of points make the "good" density, from
        # which automl_kde_samples candidates are drawn, once automl_min_points_in_model points exist
        startup = settings.min_points_in_model
        with warnings.catch_warnings():  # gamma is "deprecated" (kept until Optuna 6): BOHB's top_n_percent
            warnings.simplefilter("ignore", FutureWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=startup,
                n_ei_candidates=settings.kde_samples,
                gamma=TopFraction(settings.top_n_percent),
                multivariate=True,
                constant_liar=True,
            )
    else:
        # TPE: few random start-up trials for short sweeps, constant liar so parallel trials spread out
        startup = min(10, max(2, settings.max_recommendations // 4))
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True
        )
    if settings.run_baseline:  # the spec's values are a known good start: explore around the best first
        from automl.backends.optuna.neighbourhood_sampler import NeighbourhoodStartSampler

        return NeighbourhoodStartSampler(
            sampler, n_startup_trials=startup, seed=seed, objective_index=_metric_index(settings)
        )
    return sampler


def study_directions(settings: AutomlSettings) -> list[Direction]:
    """The study's directions: the training metric's, or one per ``--objectives`` entry in order."""
    if settings.objectives:
        return [direction for _, direction in settings.objectives]
    return ["maximize" if settings.direction == "maximize" else "minimize"]


def _metric_index(settings: AutomlSettings) -> int:
    names = [name for name, _ in settings.objectives]
    return names.index(settings.metric) if settings.metric in names else 0


def told_values(settings: AutomlSettings, value: float | None, latency_ms: float | None) -> Any:
    """What a complete trial tells the study: its value, or its values in ``--objectives`` order."""
    if not settings.objectives:
        return value
    if (
        latency_ms is None or value is None
    ):  # internal invariant: the loop measures every trial of such a sweep
        raise RuntimeError("a multi-objective trial finished without a latency_ms measurement")
    return [value if name == settings.metric else float(latency_ms) for name, _ in settings.objectives]


def make_pruner(settings: AutomlSettings, max_epochs: int) -> optuna.pruners.BasePruner:
    """Multi-fidelity over epochs: each trial keeps training in its own process until pruned."""
    if settings.fidelity == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(2, max_epochs), reduction_factor=settings.reduction_factor
        )
    if settings.fidelity == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=settings.reduction_factor
        )
    if settings.fidelity == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


# The study's user attribute that holds what `automl worker` needs to join the sweep.
DEFINITION_ATTR = "automl_sweep"


def open_study(
    name: str,
    storage: Any,
    settings: AutomlSettings,
    max_epochs: int,
    *,
    create: bool,
    definition: dict[str, Any] | None = None,
) -> optuna.Study:
    """Create (``create``) or load the sweep's study. ``definition`` (base spec, settings, ranges,
    schema, max_epochs, sweep folder, tracking URI) is stored in the study once, so a worker on
    another machine needs only the storage URL and the study name."""
    sampler, pruner = make_sampler(settings), make_pruner(settings, max_epochs)
    if settings.objectives:  # Optuna prunes single-objective studies only: the twin study prunes
        pruner = optuna.pruners.NopPruner()
    if create:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=study_directions(settings),
            load_if_exists=True,
        )
        if definition is not None and DEFINITION_ATTR not in study.user_attrs:
            study.set_user_attr(DEFINITION_ATTR, definition)
        return study
    try:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        raise SettingError(
            f"--study: no study named {name!r} in that storage; start the sweep with automl run"
        ) from None
