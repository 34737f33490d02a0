"""A small curve table for the replay tests, written the way bench/curve_table.py exports a real
one. Its curves come from a fixed learning-curve model, not from training: the lr decides how fast a
configuration learns and where it ends (too high learns fast and ends low, too low never gets
there), the weight decay and the scheduler shift the end a little; seeds add a per-run offset and
per-epoch noise of about 0.01 each. Deterministic for a given ``seed``."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from automl.space.params import SearchParam, SearchSpace

EPOCHS = 8
SPACE = SearchSpace(
    params=[
        SearchParam("train.optim.lr", "float", default=2e-4, low=1e-5, high=1e-2, scale="log"),
        SearchParam("train.optim.weight_decay", "float", default=1e-4, low=1e-6, high=1e-2, scale="log"),
        SearchParam("train.optim.warmup_steps", "int", default=20, low=0, high=200),
        SearchParam(
            "train.optim.lr_scheduler",
            "categorical",
            default="MultiStep",
            choices=("MultiStep", "FlatCosine"),
        ),
    ]
)


def curve(params: dict[str, Any], rng: random.Random, noise: float) -> list[list[float]]:
    x = math.log10(params["train.optim.lr"]) + 3.0  # 0 at lr 1e-3, the best end
    wd = math.log10(params["train.optim.weight_decay"]) + 4.0
    end = (
        0.92
        - 0.3 * x * x
        - 0.02 * wd * wd
        - (0.02 if params["train.optim.lr_scheduler"] == "MultiStep" else 0.0)
    )
    end -= 0.0001 * abs(params["train.optim.warmup_steps"] - 50)
    tau = 2.5 * 10 ** (-0.35 * x)  # a higher lr learns faster
    offset = rng.gauss(0.0, noise)
    rows = []
    for epoch in range(1, EPOCHS + 1):
        value = end * (1.0 - math.exp(-epoch / tau)) + offset + rng.gauss(0.0, noise)
        rows.append(
            [epoch, round(6.0 + 3.0 * epoch, 2), round(min(1.0, max(0.0, value)), 4), round(2.0 - value, 4)]
        )
    return rows


def sample(rng: random.Random) -> dict[str, Any]:
    return {
        "train.optim.lr": 10 ** rng.uniform(-5, -2),
        "train.optim.weight_decay": 10 ** rng.uniform(-6, -2),
        "train.optim.warmup_steps": rng.randint(0, 200),
        "train.optim.lr_scheduler": rng.choice(["MultiStep", "FlatCosine"]),
    }


def write_table(
    path: Path,
    configurations: int = 80,
    repeated: int = 10,
    seeds: int = 3,
    seed: int = 0,
    noise: float = 0.01,
) -> Path:
    rng = random.Random(seed)
    runs = []
    for number in range(configurations):
        params = sample(rng)
        for s in range(seeds if number < repeated else 1):
            runs.append({"trial": number, "seed": s, "params": params, "epochs": curve(params, rng, noise)})
    table = {
        "command": "tests/automl/replay_table.py (a learning-curve model)",
        "space": SPACE.as_dict(),
        "max_epochs": EPOCHS,
        "runs": runs,
    }
    path.write_text(json.dumps(table, separators=(",", ":")), encoding="utf-8")
    return path
