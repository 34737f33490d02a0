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


SYNTH = tao_schema(
    rank={"type": "int", "default": 16, "minimum": 1, "maximum": 256, "math_cond": "^ 2", "automl_enabled": True},
    hidden={"type": "int", "default": 64, "minimum": 8, "maximum": 100, "math_cond": "/ 8", "automl_enabled": True},
    crop_min={"type": "float", "default": 0.3, "minimum": 0.1, "maximum": 0.9, "parent_param": "TRUE"},
    crop_max={
        "type": "float",
        "default": 0.8,
        "minimum": 0.1,
        "maximum": 1.0,
        "math_cond": "> depends_on",
        "depends_on": "train.crop_min",
    },
    size_min={"type": "int", "default": 32, "minimum": 16, "maximum": 64, "parent_param": "TRUE"},
    size_max={
        "type": "int",
        "default": 60,
        "minimum": 16,
        "maximum": 60,
        "math_cond": "> depends_on",
        "depends_on": "train.size_min",
    },
    decay={"type": "categorical", "default": "cosine", "enum": ["linear", "sqrt", "cosine", "none"],
           "option_weights": [0.1, 0.1, 0.4, 0.4]},
    num_queries={"type": "int", "default": 300, "minimum": 1, "maximum": math.inf, "parent_param": "TRUE"},
    num_select={"type": "int", "default": 300, "minimum": 1, "maximum": 1000, "depends_on": "train.num_queries"},
)  # fmt: skip
