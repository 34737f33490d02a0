"""Small TAO-format schemas and sampling helpers shared by the space and sampling tests."""

from __future__ import annotations

import math
from typing import Any

import optuna

from automl.space.params import SearchSpace
from automl.space.sampling import sample_params

optuna.logging.set_verbosity(optuna.logging.WARNING)


def random_study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")


def draw(space: SearchSpace, n: int, seed: int = 0) -> list[dict[str, Any]]:
    study = random_study(seed)
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(sample_params(space, trial))
        study.tell(trial, 0.0)
    return out


def tao_schema(**props: dict[str, Any]) -> dict[str, Any]:
    """A TAO-format schema whose ``props`` sit under a ``train`` collection; all are defaults."""
    return {
        "automl_default_parameters": [f"train.{k}" for k in props],
        "properties": {"train": {"type": "collection", "properties": props}, "stray": ["x"]},
    }


def spec_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"train": {k: v.get("default") for k, v in schema["properties"]["train"]["properties"].items()}}


def prop(
    kind: str, default: Any, minimum: float | None = None, maximum: float | None = None, **keys: Any
) -> dict[str, Any]:
    """One schema property: its type, default and bounds (when given), and any other TAO keys."""
    bounds = {k: v for k, v in (("minimum", minimum), ("maximum", maximum)) if v is not None}
    return {"type": kind, "default": default, **bounds, **keys}


SYNTH = tao_schema(
    rank=prop("int", 16, 1, 256, math_cond="^ 2", automl_enabled=True),
    hidden=prop("int", 64, 8, 100, math_cond="/ 8", automl_enabled=True),
    crop_min=prop("float", 0.3, 0.1, 0.9, parent_param="TRUE"),
    crop_max=prop("float", 0.8, 0.1, 1.0, math_cond="> depends_on", depends_on="train.crop_min"),
    size_min=prop("int", 32, 16, 64, parent_param="TRUE"),
    size_max=prop("int", 60, 16, 60, math_cond="> depends_on", depends_on="train.size_min"),
    decay=prop(
        "categorical",
        "cosine",
        enum=["linear", "sqrt", "cosine", "none"],
        option_weights=[0.1, 0.1, 0.4, 0.4],
    ),
    num_queries=prop("int", 300, 1, math.inf, parent_param="TRUE"),
    num_select=prop("int", 300, 1, 1000, depends_on="train.num_queries"),
)
