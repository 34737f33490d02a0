"""Population based training on the Optuna backend: exploit the best checkpoints, explore around them.

``automl_algorithm=pbt`` without Ray. Each trial is one stretch of training of one member:

- founders: the first ``automl_population_size`` trials (the baseline among them with
  ``run_baseline=true``) train from scratch for the sweep's epochs, at random points of the space;
- every later trial *exploits*: it picks a trial from the top quantile (a quarter, at least one) of
  the finished ones and resumes from that trial's best epoch checkpoint
  (``train.resume_training_checkpoint_path``: weights, EMA, AdamW's moments and the epoch counter
  continue) for ``automl_eval_interval`` more epochs; the trainer applies the new spec's lr, weight
  decay and schedule from that epoch on (``model.engine.optim.follow_spec_after_resume``);
- and *explores*: each training parameter of the parent's (not ``model.*``: the clone keeps the
  architecture of the weights it copies) is multiplied or divided by ``automl_perturbation_factor``
  (numbers, clipped to their range and step) or, for a choice, drawn again with probability 0.25.

A lineage is at most ``automl_max_generations`` trials deep. Trials are ranked by their best epoch
as in every sweep; a clone's epochs continue its parent's training, so the best trial holds the
best checkpoint of any lineage. The sweep stops when the budget (trials or time) is used, or when
no finished trial is left to continue from.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from automl.backends.base import Continuation
from automl.results.objective import Objective
from automl.results.trial_record import TrialRecord
from automl.space.params import SearchSpace

__all__ = ["Clone", "Population", "clone_of", "explore_moves", "perturb_params"]

TOP_QUANTILE = 0.25
RESAMPLE_PROBABILITY = 0.25
ATTR = "pbt_clone"  # the enqueued trial's user attribute: where it continues from


@dataclass(frozen=True)
class Clone:
    parent: int  # the trial whose checkpoint this one continues
    checkpoint: str
    resume_epoch: int  # the first epoch the clone trains (the parent's best epoch + 1)
    generation: int  # founders are generation 0
    epochs: int  # train.num_epochs of the clone: resume_epoch + automl_eval_interval

    def as_attr(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def as_continuation(self) -> Continuation:
        return Continuation(
            parent=self.parent,
            checkpoint=self.checkpoint,
            resume_epoch=self.resume_epoch,
            epochs=self.epochs,
            generation=self.generation,
        )


def explore_moves(space: SearchSpace) -> dict[str, str]:
    """How explore moves each training parameter, by Optuna name (``model.*`` parameters stay).

    ``scale``: the value (a plain number, ``1 - x`` of a decay, or the position inside a dependent
    range) is multiplied or divided by the factor; ``exponent``: a power-of-k value moves one power
    up or down; ``choice``: an option (weighted ones included) is drawn again with probability 0.25.
    """
    moves: dict[str, str] = {}
    for p in space.params:
        if p.name.startswith("model."):
            continue
        if p.encoding == "power":
            moves[p.optuna_name] = "exponent"
        elif p.encoding == "weights" or p.kind == "categorical":
            moves[p.optuna_name] = "choice"
        else:
            moves[p.optuna_name] = "scale"
    return moves


def _numeric(dist: BaseDistribution) -> IntDistribution | FloatDistribution:
    if not isinstance(dist, (IntDistribution, FloatDistribution)):
        raise TypeError(f"not a numeric Optuna distribution: {dist!r}")
    return dist


def perturb_params(
    params: dict[str, Any],
    distributions: dict[str, BaseDistribution],
    moves: dict[str, str],
    factor: float,
    rng: random.Random,
) -> dict[str, Any]:
    """PBT's explore step on Optuna-encoded parameters (see :func:`explore_moves`)."""
    out = dict(params)
    for name, value in params.items():
        dist, move = distributions.get(name), moves.get(name)
        if move is None or dist is None:
            continue
        if move == "choice":
            if rng.random() < RESAMPLE_PROBABILITY:
                if isinstance(dist, CategoricalDistribution):
                    out[name] = dist.choices[rng.randrange(len(dist.choices))]
                else:  # a weighted choice's uniform position
                    position = _numeric(dist)
                    out[name] = rng.uniform(position.low, position.high)
            continue
        if isinstance(dist, CategoricalDistribution):
            continue
        dist = _numeric(dist)
        up = rng.random() < 0.5
        if move == "exponent":
            moved: float = float(value) + (1 if up else -1)
        else:
            moved = float(value) * (factor if up else 1.0 / factor)
            if isinstance(dist, IntDistribution) and round(moved) == value:
                moved = float(value) + (1 if up else -1)  # a small int still moves
        step = dist.step
        if step:
            moved = dist.low + round((moved - dist.low) / step) * step
        moved = min(max(moved, dist.low), dist.high)
        out[name] = round(moved) if isinstance(dist, IntDistribution) else float(moved)
    return out


class Population:
    """Decides, before each ``study.ask()``, whether the next trial is a founder or a clone."""

    def __init__(self, space: SearchSpace, settings: Any, seed: int | None = None):
        self.space = space
        self.size = max(1, int(settings.population_size))
        self.max_generations = max(1, int(settings.max_generations))
        self.interval = max(1, int(settings.eval_interval))
        self.factor = float(settings.perturbation_factor)
        self.objective = Objective(settings.metric, settings.direction)
        self.moves = explore_moves(space)
        self.rng = random.Random(seed)

    def founders_launched(self, study: optuna.Study) -> bool:
        asked = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
        return len(asked) >= self.size

    def parents(self, finished: Sequence[TrialRecord]) -> list[TrialRecord]:
        """The top quantile of the finished trials that left a checkpoint and may have a child."""
        scored = [
            t
            for t in finished
            if t.state.scored  # PRUNED here: stopped by the time budget
            and t.value is not None
            and t.best_epoch is not None
            and t.checkpoint
            and Path(str(t.checkpoint)).is_file()
            and int(t.generation or 0) < self.max_generations
        ]
        scored = self.objective.ranked(scored, lambda t: float(t.value or 0.0))
        return scored[: max(1, math.ceil(TOP_QUANTILE * len(scored)))] if scored else []

    def enqueue_clone(self, study: optuna.Study, finished: Sequence[TrialRecord]) -> Clone | None:
        """Enqueue the next trial as a perturbed copy of a top trial; None when none can be copied."""
        parents = self.parents(finished)
        if not parents:
            return None
        parent = parents[self.rng.randrange(len(parents))]
        frozen = study.trials[parent.number]
        params = perturb_params(frozen.params, frozen.distributions, self.moves, self.factor, self.rng)
        resume_epoch = int(parent.best_epoch or 0) + 1
        clone = Clone(
            parent=parent.number,
            checkpoint=str(parent.checkpoint),
            resume_epoch=resume_epoch,
            generation=int(parent.generation or 0) + 1,
            epochs=resume_epoch + self.interval,
        )
        study.enqueue_trial(params, user_attrs={ATTR: clone.as_attr()}, skip_if_exists=False)
        return clone


def clone_of(trial: Any) -> Clone | None:
    """The clone an asked trial was enqueued as (None for a founder)."""
    attr = trial.user_attrs.get(ATTR) if trial is not None else None
    return Clone(**attr) if attr else None
