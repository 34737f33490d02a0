"""The Pareto front of a multi-objective sweep (``--objectives val_mAP50,latency_ms``).

A complete trial with a value and a latency is on the front when no other such trial is at least as
good in both objectives and better in one. Trials over ``--max-latency-ms`` never trained, so they
are not on it; the front is computed from the trial records alone (any backend, any resume), and
written to summary.json as ``pareto_front``: the front's trials, most accurate first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from automl.results.objective import Direction, Objective
from automl.results.trial_record import TrialRecord, TrialState

__all__ = ["front_entries", "front_numbers", "pareto_front"]


def _point(record: TrialRecord) -> tuple[float, float] | None:
    if record.state != TrialState.COMPLETE or record.value is None or record.latency_ms is None:
        return None
    value, latency = float(record.value), float(record.latency_ms)
    return (value, latency) if math.isfinite(value) and math.isfinite(latency) else None


def pareto_front(records: Iterable[TrialRecord], objective: Objective) -> list[TrialRecord]:
    """The non-dominated complete trials (accuracy by ``objective``, latency minimized), best
    accuracy first; of trials with the same two values, the earliest."""
    scored = [(r, p) for r in records if (p := _point(r)) is not None]
    sign = 1.0 if objective.maximize else -1.0

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        no_worse = sign * a[0] >= sign * b[0] and a[1] <= b[1]
        return no_worse and (sign * a[0] > sign * b[0] or a[1] < b[1])

    front: list[tuple[TrialRecord, tuple[float, float]]] = []
    for record, point in scored:
        if any(dominates(other, point) for _, other in scored):
            continue
        if any(kept == point for _, kept in front):  # a tie: the earliest trial stands for it
            continue
        front.append((record, point))
    front.sort(key=lambda item: (-sign * item[1][0], item[1][1]))
    return [record for record, _ in front]


def front_entries(front: Sequence[TrialRecord], metric: str) -> list[dict[str, Any]]:
    """summary.json's ``pareto_front``: trial, both objectives, best epoch and checkpoint."""
    return [
        {
            "trial": r.number,
            metric: r.value,
            "latency_ms": r.latency_ms,
            "best_epoch": r.best_epoch,
            "checkpoint": r.checkpoint,
        }
        for r in front
    ]


def front_numbers(summary: Mapping[str, Any]) -> list[int] | None:
    """The Pareto front's trial numbers of a summary.json's trials (None: a single-objective sweep),
    computed from the trials it lists, so a shared storage's newer trials count."""
    objectives = summary.get("objectives")
    if not objectives:
        return None
    metric = next((o["name"] for o in objectives if o["name"] != "latency_ms"), "val_mAP50")
    direction: Direction = (
        "minimize"
        if any(o["name"] == metric and o["direction"] == "minimize" for o in objectives)
        else "maximize"
    )
    records = [TrialRecord.from_dict(t) for t in summary.get("trials") or []]
    return [r.number for r in pareto_front(records, Objective(metric, direction))]
