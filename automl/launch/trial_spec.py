"""The spec one trial of a sweep runs: the base spec with the trial's sampled values applied.

Shared by every backend (the Optuna threads and the Ray Tune trainable), so a trial's spec does not
depend on where it runs. :func:`continue_spec` makes a trial continue another trial's checkpoint
(population based training).
"""

from __future__ import annotations

from typing import Any

from automl.settings.action_profiles import apply_combination
from automl.space.architecture import apply_architecture
from automl.space.build import apply_params
from automl.spec import get_dotted, set_dotted

__all__ = ["continue_spec", "spec_for_params"]


def spec_for_params(
    base: dict[str, Any],
    params: dict[str, Any],
    max_epochs: int,
    validate_every_epoch: bool,
    last_checkpoint_only: bool = False,
) -> dict[str, Any]:
    """``base`` with ``params`` applied, ``max_epochs`` epochs, validation every epoch when the
    schedule needs one per epoch, and no resume file of the base spec's. ``last_checkpoint_only``
    (``automl_checkpoint_retention_strategy=terminal``): only the last epoch is saved."""
    base, params = apply_combination(base, params)  # a sampled quantize.combination row
    base, params = apply_architecture(base, params)  # a sampled input_size; feat_channels tied to hidden_dim
    spec = apply_params(base, params)
    spec = set_dotted(spec, "train.num_epochs", max_epochs)
    if validate_every_epoch or int(get_dotted(spec, "train.validation_interval", 1)) > max_epochs:
        spec = set_dotted(spec, "train.validation_interval", 1)
    if last_checkpoint_only or int(get_dotted(spec, "train.checkpoint_interval", 1)) > max_epochs:
        spec = set_dotted(spec, "train.checkpoint_interval", max_epochs)
    return set_dotted(spec, "train.resume_training_checkpoint_path", "")


def continue_spec(spec: dict[str, Any], checkpoint: str, epochs: int) -> dict[str, Any]:
    """Resume ``checkpoint`` (weights, optimizer, epoch counter) and train until ``epochs``,
    validating and saving every epoch."""
    spec = set_dotted(spec, "train.resume_training_checkpoint_path", checkpoint)
    spec = set_dotted(spec, "train.num_epochs", epochs)
    spec = set_dotted(spec, "train.validation_interval", 1)
    return set_dotted(spec, "train.checkpoint_interval", 1)
