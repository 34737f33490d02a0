"""The Ray Tune backend (``--backend ray``): a ``Tuner`` over :class:`~automl.backends.ray_tune.trainable.TrialTrainable`.

DESIGN calls this module ``automl/backends/ray.py``; it is ``ray_tune.py`` so that it can never
shadow the ``ray`` package for code that imports ``ray`` from this folder.

What it builds from the AutoML settings:

- search: Optuna TPE / GP / random through ``OptunaSearch`` with a define-by-run function that is
  :func:`automl.space.sampling.sample_params` itself (weights, conditions, dependencies kept); ``pbt``:
  Tune's own variant generator over the space's fixed distributions; synchronous generations every
  ``automl_eval_interval`` epochs (at most half the epochs), where the bottom quantile copies a top
  trial's checkpoint and configuration and perturbs its training (non-``model.``) parameters;
  ``bohb``: ``TuneBOHB`` over a ConfigSpace of the same distributions (needs ``ConfigSpace`` and
  ``hpbandster``);
- scheduler (budget = completed epochs): ``asha`` (the default with ``--backend ray``),
  ``hyperband``, ``bohb`` (``HyperBandForBOHB``), ``pbt``, ``median``, or none;
- resources: ``train.num_gpus`` GPUs per trial when the cluster has GPUs, and a CPU share;
- Ray: ``--ray-address`` joins an existing cluster; otherwise a local Ray with the dashboard off and
  a capped object store, shut down at the end. Tune's files go to ``<sweep>/ray``; ``--resume``
  restores from there with ``Tuner.restore``.

The driver stays the only writer of ``summary.json`` and MLflow (``automl.backends.ray_tune.callback``);
the trials run in Ray workers (``automl.backends.ray_tune.trainable``).
"""

from __future__ import annotations

from typing import Any

from automl.backends.base import SweepHooks, SweepPlan
from automl.backends.ray_tune.callback import (
    SweepCallback,
    attach,
    detach,
    scheduler_name,
    stopped_at_deadline,
    trial_dirname,
    trial_name,
    uses_bohb,
)
from automl.backends.ray_tune.cluster import guard_local_ray, start_ray, trial_resources
from automl.backends.ray_tune.trainable import TIME_ATTR, TrialJob, TrialTrainable, space_distributions
from automl.errors import SettingError
from automl.results.trial_record import TrialState
from automl.space.params import SearchSpace

__all__ = ["run_ray_sweep"]

RAY_DIR = "ray"


# --- search, scheduler, resources ---------------------------------------------------------------
def _tune_domains(space: SearchSpace) -> dict[str, Any]:
    """The space's fixed distributions as Tune domains (for PBT's sampling and perturbation)."""
    import optuna
    from ray import tune

    out: dict[str, Any] = {}
    for name, dist in space_distributions(space).items():
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            out[name] = tune.choice(list(dist.choices))
        elif isinstance(dist, optuna.distributions.IntDistribution):
            if dist.log:
                out[name] = tune.lograndint(dist.low, dist.high + 1)
            else:
                out[name] = (
                    tune.qrandint(dist.low, dist.high, dist.step)
                    if dist.step > 1
                    else tune.randint(dist.low, dist.high + 1)
                )
        elif dist.log:
            out[name] = tune.loguniform(dist.low, dist.high)
        elif dist.step:
            out[name] = tune.quniform(dist.low, dist.high, dist.step)
        else:
            out[name] = tune.uniform(dist.low, dist.high)
    return out


def _config_space(space: SearchSpace, seed: int | None) -> Any:
    """The space's fixed distributions as a ConfigSpace (for TuneBOHB)."""
    import ConfigSpace as CS
    import optuna

    config_space = CS.ConfigurationSpace(seed=seed)
    for name, dist in space_distributions(space).items():
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            config_space.add(CS.CategoricalHyperparameter(name, list(dist.choices)))
        elif isinstance(dist, optuna.distributions.IntDistribution):
            config_space.add(CS.UniformIntegerHyperparameter(name, dist.low, dist.high, log=dist.log))
        else:
            config_space.add(CS.UniformFloatHyperparameter(name, dist.low, dist.high, log=dist.log))
    return config_space


class _DefineByRun:
    """OptunaSearch's define-by-run space: :func:`automl.space.sampling.sample_params` (picklable, as Tune
    saves the searcher with the standard pickle)."""

    def __init__(self, space: SearchSpace):
        self.space = space

    def __call__(self, trial: Any) -> None:
        from automl.space.sampling import sample_params

        sample_params(self.space, trial)


def make_search(plan: SweepPlan) -> tuple[Any, dict[str, Any]]:
    """(search algorithm or None, param_space) for the Tuner."""
    from automl.backends.optuna.study import make_sampler
    from automl.space.sampling import encode_params

    settings, space = plan.settings, plan.space
    metric, mode = settings.metric, plan.objective.mode
    assert space is not None  # internal invariant: the Ray backend only runs searches
    if uses_bohb(settings):
        try:
            import ConfigSpace  # noqa: F401
            import hpbandster  # noqa: F401
            from ray.tune.search.bohb import TuneBOHB
        except ImportError:
            raise SettingError(
                "automl_algorithm=bohb with --backend ray needs TuneBOHB's extra packages: "
                "pip install ConfigSpace hpbandster (or use --backend optuna, where bohb is TPE + Hyperband)"
            ) from None
        config = {
            "min_points_in_model": settings.min_points_in_model,
            "top_n_percent": settings.top_n_percent,
            "num_samples": settings.kde_samples,
        }
        config_space = _config_space(space, settings.seed)
        bohb = TuneBOHB(space=config_space, bohb_config=config, metric=metric, mode=mode, seed=settings.seed)
        return bohb, {}
    if settings.algorithm == "pbt":
        return None, _tune_domains(space)
    from ray.tune.search.optuna import OptunaSearch

    points = [encode_params(space, space.defaults())] if settings.run_baseline else None
    sampler = make_sampler(settings)
    search = OptunaSearch(
        space=_DefineByRun(space),
        metric=metric,
        mode=mode,
        points_to_evaluate=points,
        sampler=sampler,
        seed=settings.seed,
    )
    return search, {}


def make_scheduler(plan: SweepPlan) -> Any:
    from ray.tune import schedulers

    settings, max_t = plan.settings, max(1, plan.max_epochs)
    if uses_bohb(settings):
        return schedulers.HyperBandForBOHB(
            time_attr=TIME_ATTR, max_t=max_t, reduction_factor=settings.reduction_factor
        )
    if settings.algorithm == "pbt":
        interval = max(1, min(settings.eval_interval, max_t // 2 or 1))
        factor = settings.perturbation_factor
        # explore perturbs training parameters only: a clone keeps the architecture of the weights it copies
        space = plan.space
        assert space is not None  # internal invariant: the Ray backend only runs searches
        domains = _tune_domains(space)
        mutable = {p.optuna_name for p in space.params if not p.name.startswith("model.")}
        mutations = {name: domain for name, domain in domains.items() if name in mutable} or domains
        quantile = 0.25 if settings.max_recommendations >= 4 else 0.5  # a tiny population still exploits
        return schedulers.PopulationBasedTraining(
            time_attr=TIME_ATTR,
            perturbation_interval=interval,
            hyperparam_mutations=mutations,
            perturbation_factors=(factor, 1.0 / factor),
            quantile_fraction=quantile,
            resample_probability=0.25,
            synch=True,  # generations, as TAO runs PBT: the bottom quantile copies the top at each interval
        )
    if settings.fidelity == "asha":
        return schedulers.ASHAScheduler(
            time_attr=TIME_ATTR, max_t=max_t, grace_period=1, reduction_factor=settings.reduction_factor
        )
    if settings.fidelity == "hyperband":
        return schedulers.HyperBandScheduler(
            time_attr=TIME_ATTR, max_t=max_t, reduction_factor=settings.reduction_factor
        )
    if settings.fidelity == "median":
        return schedulers.MedianStoppingRule(time_attr=TIME_ATTR, grace_period=1, min_samples_required=2)
    return None


def _stopper(plan: SweepPlan) -> Any:
    """The time budget and hyperband_es's plateau rule, as on the Optuna backend."""
    from automl.backends.plateau import plateau_rule
    from automl.backends.ray_tune.stopper import SweepStopper

    return SweepStopper(plan.settings.metric, plateau_rule(plan.settings))


def _keeps_checkpoints(plan: SweepPlan) -> bool:
    """Schedulers that pause or clone trials resume from any epoch's checkpoint: keep them all."""
    return (
        uses_bohb(plan.settings) or plan.settings.algorithm == "pbt" or plan.settings.fidelity == "hyperband"
    )


def run_ray_sweep(hooks: SweepHooks, *, address: str | None, create: bool) -> str | None:
    """Run (or, with ``create=False``, restore) the sweep on Ray; every trial event goes to ``hooks``.
    Returns why it stopped early (the time budget), or None."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SettingError("--backend ray needs Ray Tune: pip install 'ray[tune]'") from None
    plan = hooks.plan
    if plan.space is None:
        raise SettingError(
            "--backend ray runs searches only; plain training (--policy off) uses the default backend"
        )
    action = plan.action
    if action != "train":
        raise SettingError(f"--backend ray runs train trials; use --backend optuna for --action {action}")
    search_alg, param_space = make_search(plan)  # errors (missing packages) before Ray starts
    scheduler = make_scheduler(plan)
    started_ray = start_ray(address, plan.concurrency)
    watchdog = guard_local_ray() if started_ray and not address else None
    attach(hooks)
    try:
        cpus, gpus = trial_resources(plan, _num_gpus(plan))
        hooks.set_summary(
            ray={
                "address": address or "local",
                "cpus_per_trial": cpus,
                "gpus_per_trial": gpus,
                "scheduler": scheduler_name(plan),
                "storage": str(plan.folder.resolve() / RAY_DIR),
            }
        )
        settings = plan.settings
        retention = settings.checkpoint_retention_strategy
        prune = settings.delete_intermediate_ckpt and not _keeps_checkpoints(plan) and retention != "terminal"
        job = TrialJob(
            sweep_dir=str(plan.folder.resolve()),
            base_spec=plan.base_spec,
            space=plan.space,
            max_epochs=plan.max_epochs,
            objective=plan.objective,
            timeout=plan.settings.timeout_per_trial,
            trial_env=dict(plan.trial_env),
            cpus_per_trial=cpus,
            gpus_per_trial=gpus,
            keep_only_best=prune,
            keep=retention,
        )
        trainable = tune.with_resources(
            tune.with_parameters(TrialTrainable, job=job), {"cpu": cpus, "gpu": gpus}
        )
        path = plan.folder.resolve() / RAY_DIR
        if not create and tune.Tuner.can_restore(str(path)):
            tuner = tune.Tuner.restore(
                str(path),
                trainable=trainable,
                resume_unfinished=True,
                resume_errored=False,
                param_space=param_space or None,
            )
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    metric=plan.settings.metric,
                    mode=plan.objective.mode,
                    search_alg=search_alg,
                    scheduler=scheduler,
                    num_samples=_remaining(hooks),
                    max_concurrent_trials=max(1, plan.concurrency),
                    trial_name_creator=trial_name,
                    trial_dirname_creator=trial_dirname,
                    reuse_actors=False,
                ),
                run_config=tune.RunConfig(
                    name=RAY_DIR,
                    stop=_stopper(plan),
                    storage_path=str(plan.folder.resolve()),
                    callbacks=[SweepCallback()],
                    failure_config=tune.FailureConfig(max_failures=0),
                    verbose=0,
                    checkpoint_config=tune.CheckpointConfig(
                        num_to_keep=4, checkpoint_frequency=1, checkpoint_at_end=True
                    ),
                ),
            )
        tuner.fit()
    finally:
        detach()
        if started_ray:
            ray.shutdown()
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
    over = hooks.past_deadline()
    if over:  # the experiment ended at the time budget: trials still running keep their best epoch
        for entry in hooks.trials():
            if entry.state == TrialState.RUNNING:
                stopped_at_deadline(hooks, entry)
    if any(entry.state == TrialState.RUNNING for entry in hooks.trials()):
        # Tune ended with unfinished trials: it was interrupted (Ctrl-C), and saved its state so that
        # `automl run --resume` continues them; the caller records the sweep as STOPPED
        raise KeyboardInterrupt
    return "time budget used up" if over else None


def _num_gpus(plan: SweepPlan) -> int:
    from automl.launch.launcher import spec_num_gpus

    return spec_num_gpus(plan.base_spec)


def _remaining(hooks: SweepHooks) -> int:
    finished = [t for t in hooks.trials() if t.state.finished]
    return max(1, hooks.plan.settings.max_recommendations - len(finished))
