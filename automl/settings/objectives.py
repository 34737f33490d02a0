"""What a sweep optimizes when it optimizes more than one thing (``--objectives``), and the direction
of a metric from its name.

``--objectives val_mAP50,latency_ms`` (either order; ``name:max`` / ``name:min`` overrides a
direction) makes the search multi-objective: the training metric (ranked by the trial's best epoch,
the one pruning and the best-trial pipeline use) and ``latency_ms``, the network's latency measured
before it trains (:mod:`automl.launch.latency_gate`). Latency is the only objective known before
training, so it is the only second objective there is; a sweep returns the Pareto front of the two.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from automl.errors import SettingError
from automl.results.objective import Direction

__all__ = ["LATENCY", "MINIMIZE_WORDS", "check_objectives", "metric_direction", "parse_objectives"]

LATENCY = "latency_ms"
# a metric whose name has one of these words is minimized unless `direction` says otherwise
MINIMIZE_WORDS = frozenset(
    "loss latency runtime duration time cost flops params memory energy wer cer perplexity ppl error".split()
)
_DIRECTIONS: dict[str, Direction] = {
    "max": "maximize",
    "maximize": "maximize",
    "min": "minimize",
    "minimize": "minimize",
}


def metric_direction(metric: str) -> Direction:
    """TAO's rule: a metric whose name says loss/latency/time/error/... is minimized, others maximized."""
    words = re.split(r"[^a-z0-9]+", metric.lower())
    return "minimize" if any(w in MINIMIZE_WORDS for w in words) else "maximize"


def parse_objectives(name: str, value: Any) -> tuple[tuple[str, Direction], ...]:
    """``"val_mAP50,latency_ms"`` (or a list; ``latency_ms:min``) -> ``(("val_mAP50", "maximize"),
    ("latency_ms", "minimize"))``, in the order given."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part.strip() for part in value.strip("[]").split(",") if part.strip()]
    if isinstance(value, (list, tuple)):  # (name, direction) pairs, as summary.json keeps them
        value = [":".join(v) if isinstance(v, (list, tuple)) and len(v) == 2 else v for v in value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SettingError(f"{name}: got {value!r}; expected metric names, e.g. val_mAP50,latency_ms")
    out: list[tuple[str, Direction]] = []
    for item in value:
        metric, _, given = item.strip().partition(":")
        metric = metric.strip()
        if given.strip().lower() not in ("", *_DIRECTIONS):
            raise SettingError(
                f"{name}: {item!r}: unknown direction {given.strip()!r}; write {metric}:max or {metric}:min"
            )
        direction = _DIRECTIONS.get(given.strip().lower()) or metric_direction(metric)
        if any(metric == seen for seen, _ in out):
            raise SettingError(f"{name}: {metric!r} is given twice; name each objective once")
        out.append((metric, direction))
    if len(out) != 2 or LATENCY not in (m for m, _ in out):
        shown = ",".join(m for m, _ in out)
        raise SettingError(
            f"{name}: got {shown!r}; a multi-objective sweep has two objectives, the training metric and "
            f"{LATENCY} (the one measured before training), e.g. val_mAP50,{LATENCY}"
        )
    if dict(out)[LATENCY] != "minimize":
        raise SettingError(
            f"{name}: {LATENCY} is minimized (a faster network has a lower latency); drop ':max'"
        )
    return tuple(out)


def check_objectives(values: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The latency settings against the others (``values``: the checked settings; ``given``: the
    canonical settings the user gave), and what ``objectives`` changes: ``metric`` and ``direction``
    become the training objective's."""
    backend, algorithm = values.get("backend", "optuna"), values.get("algorithm")
    if values.get("max_latency_ms") is not None and backend == "ray":  # the gate is the sweep loop's
        raise SettingError(
            "max_latency_ms: the latency constraint gates trials on the optuna backend only; use --backend optuna"
        )
    objectives = values.get("objectives") or ()
    if not objectives:
        return {}
    metric, direction = next((m, d) for m, d in objectives if m != LATENCY)
    for key, wanted in (("metric", metric), ("direction", direction)):
        if key in given and given[key] != wanted:
            raise SettingError(
                f"{key}={given[key]}: --objectives makes it {wanted} ({metric} is the training objective); "
                f"give one of them"
            )
    if backend == "ray":
        raise SettingError(
            "objectives: the multi-objective search (latency measured before training) runs on the optuna "
            "backend only; use --backend optuna"
        )
    if algorithm == "pbt":
        raise SettingError(
            "objectives: pbt continues one network's checkpoints, so its latency never changes; choose "
            "automl_algorithm=hyperband, asha, tpe, bayesian or random"
        )
    return {"metric": metric, "direction": direction}
