"""A table of real learning curves, the data a replayed search runs on.

The table is what ``bench/curve_table.py run`` writes: the command that trained it, the searched
space (``summary.json``'s ``space``), ``max_epochs``, and one entry per training run::

    {"trial": 7, "seed": 0, "params": {"train.optim.lr": 0.0003, ...},
     "epochs": [[epoch, seconds since the run started, val_mAP50, val_loss], ...]}

Runs of the same parameters with other seeds measure the noise. :func:`load_table` checks all of it
and names the file, the run and the key of anything it cannot use.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.errors import SettingError
from automl.space.params import Excluded, SearchParam, SearchSpace

__all__ = [
    "COLUMNS",
    "Configuration",
    "CurveTable",
    "ReplayTableError",
    "load_table",
    "space_from_dict",
    "table_from_data",
]

COLUMNS = ("epoch", "seconds", "val_mAP50", "val_loss")


class ReplayTableError(SettingError):
    """A curve table that cannot be replayed; the message names the file, the run and the key."""


@dataclass(frozen=True)
class Configuration:
    """One point of the space and its runs: the mean curve over its seeds."""

    params: dict[str, Any]
    values: tuple[float, ...]  # mean metric after each epoch 1..max_epochs
    seconds: tuple[float, ...]  # mean seconds since the run started, at the end of each epoch
    runs: tuple[tuple[float, ...], ...]  # each seed's metric curve

    @property
    def best(self) -> float:
        return max(self.values)


@dataclass(frozen=True)
class CurveTable:
    space: SearchSpace
    max_epochs: int
    metric: str
    configurations: list[Configuration]
    command: str | None = None
    source: str = ""
    noise: tuple[float, float] = field(default=(0.0, 0.0))  # (per-run offset, per-epoch) std
    failed: int = 0  # runs whose training failed (kept in the file with their reason)

    @property
    def values(self) -> list[float]:
        """Each configuration's best mean value, the yardstick of regret."""
        return [c.best for c in self.configurations]

    def quantile(self, q: float) -> float:
        """The value below which ``q`` of the configurations' best values lie (0.98: the top 2 %)."""
        ordered = sorted(self.values)
        position = q * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def space_from_dict(data: dict[str, Any]) -> SearchSpace:
    """The inverse of :meth:`SearchSpace.as_dict` (the ``space`` of summary.json or a table)."""
    params = []
    for row in data.get("params", []):
        row = dict(row)
        for key in ("choices", "weights"):
            row[key] = tuple(row.get(key) or ())
        params.append(SearchParam(**row))
    excluded = [Excluded(**row) for row in data.get("excluded", [])]
    return SearchSpace(params=params, excluded=excluded)


def load_table(path: str | Path, metric: str = "val_mAP50") -> CurveTable:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReplayTableError(
            f"{path}: no such curve table; write one with bench/curve_table.py run"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReplayTableError(f"{path}: not a JSON curve table ({type(exc).__name__}: {exc})") from None
    return table_from_data(data, path, metric)


def table_from_data(data: Any, path: Path, metric: str = "val_mAP50") -> CurveTable:
    """:func:`load_table` of already parsed JSON (``path`` names it in messages)."""
    if metric != "val_mAP50":  # regret and the top-2 % value are taken on a maximised metric
        raise ReplayTableError(f"metric: a replay ranks trials by val_mAP50, not {metric!r}")
    if not isinstance(data, dict) or not isinstance(data.get("space"), dict) or not data.get("runs"):
        raise ReplayTableError(
            f"{path}: expected an object with 'space', 'max_epochs' and a non-empty 'runs'"
        )
    try:
        space = space_from_dict(data["space"])
    except TypeError as exc:
        raise ReplayTableError(f"{path}: space: {exc}") from None
    epochs = data.get("max_epochs")
    if not isinstance(epochs, int) or epochs < 1:
        raise ReplayTableError(f"{path}: max_epochs: got {epochs!r}; expected a whole number of at least 1")
    column = COLUMNS.index(metric)
    grouped: dict[str, list[tuple[dict[str, Any], list[float], list[float]]]] = {}
    failed = 0
    for index, run in enumerate(data["runs"]):
        where = f"{path}: runs[{index}]"
        if isinstance(run, dict) and run.get("error"):  # a training that failed: no curve to replay
            failed += 1
            continue
        params = run.get("params") if isinstance(run, dict) else None
        if not isinstance(params, dict) or set(params) != set(space.names):
            raise ReplayTableError(f"{where}: params must name exactly the space's parameters {space.names}")
        rows = run.get("epochs") or []
        if [r[0] for r in rows] != list(range(1, epochs + 1)):
            raise ReplayTableError(
                f"{where}: epochs: expected rows for epochs 1..{epochs}, got {len(rows)} rows"
            )
        values = [float(r[column]) for r in rows]
        if any(not math.isfinite(v) for v in values):
            raise ReplayTableError(f"{where}: {metric} has a value that is not a finite number")
        key = json.dumps(params, sort_keys=True)
        grouped.setdefault(key, []).append((params, values, [float(r[1]) for r in rows]))
    if not grouped:
        raise ReplayTableError(f"{path}: every run failed; there is no curve to replay")
    configurations = [
        Configuration(
            params=runs[0][0],
            values=tuple(statistics.fmean(v[i] for _, v, _ in runs) for i in range(epochs)),
            seconds=tuple(statistics.fmean(s[i] for _, _, s in runs) for i in range(epochs)),
            runs=tuple(tuple(v) for _, v, _ in runs),
        )
        for runs in grouped.values()
    ]
    return CurveTable(
        space=space,
        max_epochs=epochs,
        metric=metric,
        configurations=configurations,
        command=data.get("command"),
        source=str(path),
        noise=measured_noise(configurations),
        failed=failed,
    )


def measured_noise(configurations: list[Configuration]) -> tuple[float, float]:
    """The seed noise of the repeated configurations, split in two: a per-run offset (a seed that
    is better at every epoch) and what is left per epoch. (0, 0) when nothing was repeated."""
    offsets: list[float] = []
    residuals: list[float] = []
    for config in configurations:
        if len(config.runs) < 2:
            continue
        for run in config.runs:
            deviations = [v - m for v, m in zip(run, config.values, strict=True)]
            offset = statistics.fmean(deviations)
            offsets.append(offset)
            residuals.extend(d - offset for d in deviations)
    if len(offsets) < 2:
        return 0.0, 0.0
    # deviations from a mean of n seeds shrink by sqrt((n - 1) / n): 3 seeds -> x0.82
    seeds = statistics.fmean(len(c.runs) for c in configurations if len(c.runs) >= 2)
    scale = math.sqrt(seeds / (seeds - 1))
    offset_std = math.sqrt(statistics.fmean(o * o for o in offsets)) * scale
    epoch_std = math.sqrt(statistics.fmean(r * r for r in residuals)) * scale if residuals else 0.0
    return offset_std, epoch_std
