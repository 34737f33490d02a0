"""A multi-objective sweep's Pareto front, as MLflow shows it: a plot (every trained trial by latency
and accuracy, the front joined by its staircase, trials over the latency limit marked where they
were measured) and a table (``pareto_front.json``: columns and rows, MLflow's table layout)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_front"]

COLUMNS = ("trial", "latency_ms", "best_epoch", "checkpoint")


def write_front(summary: Mapping[str, Any], out: Path) -> list[Path]:
    """Writes ``pareto_front.png`` and ``pareto_front.json`` into ``out`` (nothing for a sweep that
    has no front)."""
    front = summary.get("pareto_front")
    if not front:
        return []
    metric = str((summary.get("metric") or {}).get("name") or "val_mAP50")
    out.mkdir(parents=True, exist_ok=True)
    columns = ["trial", metric, *COLUMNS[1:]]
    table = out / "pareto_front.json"
    table.write_text(
        json.dumps({"columns": columns, "data": [[e.get(c) for c in columns] for e in front]}, indent=2),
        encoding="utf-8",
    )
    return [table, _plot(summary, front, metric, out / "pareto_front.png")]


def _plot(summary: Mapping[str, Any], front: list[dict[str, Any]], metric: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = summary.get("trials") or []
    on_front = {int(e["trial"]) for e in front}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    trained = [t for t in trials if t.get("value") is not None and t.get("latency_ms") is not None]
    rest = [t for t in trained if t["number"] not in on_front]
    if rest:
        ax.scatter(
            [t["latency_ms"] for t in rest], [t["value"] for t in rest], color="tab:gray", label="trial"
        )
    points = sorted((float(e["latency_ms"]), float(e[metric])) for e in front)
    ax.step([p[0] for p in points], [p[1] for p in points], where="post", color="tab:orange")
    ax.scatter(
        [p[0] for p in points], [p[1] for p in points], color="tab:orange", zorder=3, label="Pareto front"
    )
    for entry in front:
        ax.annotate(str(entry["trial"]), (float(entry["latency_ms"]), float(entry[metric])), fontsize="small")
    infeasible = [
        t for t in trials if t.get("failure_class") == "infeasible" and t.get("latency_ms") is not None
    ]
    if infeasible:
        low = min(p[1] for p in points)
        ax.scatter(
            [t["latency_ms"] for t in infeasible],
            [low] * len(infeasible),
            marker="x",
            color="tab:red",
            label="over the latency limit (not trained)",
        )
    ax.set(title="Pareto front", xlabel="latency ms (ONNX Runtime, batch 1)", ylabel=metric)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
