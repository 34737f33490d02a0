"""The plots of a search, drawn from ``summary.json`` and the trials' status.json (any backend).

Optimization history, parallel coordinates, parameter importances (with >= 2 completed trials) and
intermediate values per trial, each as a PNG (matplotlib) and, when plotly is installed, as an
interactive HTML page (all four on one page). Importance here is the absolute rank correlation of a parameter with the score
(numbers) or the correlation ratio (choices), normalized to sum to 1: a quick, backend-free reading,
not Optuna's fANOVA.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from automl.launch.status_tail import trial_status_file
from automl.results.trial_record import TrialState
from automl.tracking.store import finite_float, status_epochs

__all__ = ["importances", "write_plots"]

METRIC = "val_mAP50"


def _completed(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        t
        for t in summary.get("trials") or []
        if t.get("state") == TrialState.COMPLETE.value and finite_float(t.get("value")) is not None
    ]


def _numbers(values: Sequence[Any]) -> list[float] | None:
    """Every value as a finite number, or None when one is not a number."""
    numbers = [finite_float(v) for v in values]
    finite = [n for n in numbers if n is not None]
    return finite if len(finite) == len(numbers) else None


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks


def _correlation(x: Sequence[float], y: Sequence[float]) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return 0.0 if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def _correlation_ratio(groups: Sequence[Any], y: Sequence[float]) -> float:
    mean = sum(y) / len(y)
    total = sum((v - mean) ** 2 for v in y)
    if total == 0:
        return 0.0
    between = 0.0
    for group in set(map(str, groups)):
        members = [v for g, v in zip(groups, y) if str(g) == group]
        between += len(members) * (sum(members) / len(members) - mean) ** 2
    return math.sqrt(between / total)


def importances(summary: Mapping[str, Any]) -> dict[str, float]:
    """Parameter -> share of importance (sums to 1; empty with fewer than 2 completed trials)."""
    done = _completed(summary)
    if len(done) < 2:
        return {}
    scores = [float(t["value"]) for t in done]
    names = sorted({k for t in done for k in (t.get("params") or {})})
    raw: dict[str, float] = {}
    for name in names:
        values = [(t.get("params") or {}).get(name) for t in done]
        numbers = _numbers(values)
        if numbers is not None:
            raw[name] = abs(_correlation(_ranks(numbers), _ranks(scores)))
        else:
            raw[name] = _correlation_ratio(values, scores)
    total = sum(raw.values())
    if total == 0:
        return {name: 1.0 / len(raw) for name in raw} if raw else {}
    return dict(sorted(((k, v / total) for k, v in raw.items()), key=lambda kv: -kv[1]))


def histories(summary: Mapping[str, Any], sweep_dir: Path) -> dict[int, list[tuple[int, float]]]:
    """Trial number -> [(epoch, val_mAP50)] read from each trial's status.json."""
    out: dict[int, list[tuple[int, float]]] = {}
    for trial in summary.get("trials") or []:
        folder = Path(trial.get("folder") or Path(sweep_dir) / "trials" / f"{int(trial['number']):04d}")
        epochs = status_epochs(trial_status_file(folder))
        points = [(e, m[METRIC]) for e, m in sorted(epochs.items()) if METRIC in m]
        if points:
            out[int(trial["number"])] = points
    return out


def _axis_values(done: list[dict[str, Any]], name: str) -> tuple[list[float], list[str] | None]:
    values = [(t.get("params") or {}).get(name) for t in done]
    numbers = _numbers(values)
    if numbers is not None:
        low, high = min(numbers), max(numbers)
        span = (high - low) or 1.0
        return [(n - low) / span for n in numbers], None
    labels = sorted({str(v) for v in values})
    step = 1.0 / max(1, len(labels) - 1)
    return [labels.index(str(v)) * step for v in values], labels


def _png_plots(summary: Mapping[str, Any], hist: dict[int, list[tuple[int, float]]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in summary.get("trials") or [] if finite_float(t.get("value")) is not None]
    done = _completed(summary)
    written: list[Path] = []

    fig, ax = plt.subplots(figsize=(7, 4))
    for state, color in (
        (TrialState.COMPLETE.value, "tab:blue"),
        (TrialState.PRUNED.value, "tab:gray"),
        (TrialState.FAIL.value, "tab:red"),
    ):
        xs = [t["number"] for t in trials if t.get("state") == state]
        ys = [float(t["value"]) for t in trials if t.get("state") == state]
        if xs:
            ax.scatter(xs, ys, color=color, label=state.lower())
    if done:
        best, xs, ys = -math.inf, [], []
        for t in sorted(done, key=lambda t: t["number"]):
            best = max(best, float(t["value"]))
            xs.append(t["number"])
            ys.append(best)
        ax.step(xs, ys, where="post", color="tab:orange", label="best so far")
    ax.set(title="Optimization history", xlabel="trial", ylabel=METRIC)
    if trials:  # a sweep that stopped before its first trial has nothing to label
        ax.legend(loc="lower right")
    written.append(_save(fig, out / "optimization_history.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for number, points in sorted(hist.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=f"trial {number}")
    ax.set(title="Intermediate values", xlabel="epoch", ylabel=METRIC)
    if 0 < len(hist) <= 12:
        ax.legend(fontsize="small")
    written.append(_save(fig, out / "intermediate_values.png"))

    names = sorted({k for t in done for k in (t.get("params") or {})})
    if done and names:
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * (len(names) + 1)), 4))
        scores = [float(t["value"]) for t in done]
        low, high = min(scores), max(scores)
        columns = [_axis_values(done, n)[0] for n in names]
        columns.append([(s - low) / ((high - low) or 1.0) for s in scores])
        cmap = plt.get_cmap("viridis")
        for i in range(len(scores)):
            ax.plot(range(len(columns)), [c[i] for c in columns], color=cmap(columns[-1][i]), alpha=0.8)
        ax.set_xticks(range(len(columns)), [*names, METRIC], rotation=20, ha="right", fontsize="small")
        ax.set_yticks([])
        ax.set_title("Parallel coordinates (each axis scaled to its range)")
        written.append(_save(fig, out / "parallel_coordinates.png"))

    shares = importances(summary)
    if shares:
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(shares) + 1.5))
        ax.barh(list(shares)[::-1], list(shares.values())[::-1], color="tab:blue")
        ax.set(title="Parameter importances (rank correlation with val_mAP50)", xlabel="share")
        written.append(_save(fig, out / "param_importances.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _html_plots(
    summary: Mapping[str, Any], hist: dict[int, list[tuple[int, float]]], out: Path
) -> list[Path]:
    import plotly.graph_objects as go

    figures: list[Any] = []
    trials = [t for t in summary.get("trials") or [] if finite_float(t.get("value")) is not None]
    fig = go.Figure(
        go.Scatter(
            x=[t["number"] for t in trials],
            y=[t["value"] for t in trials],
            mode="markers",
            text=[t.get("state") for t in trials],
        )
    )
    fig.update_layout(title="Optimization history", xaxis_title="trial", yaxis_title=METRIC)
    figures.append(fig)
    fig = go.Figure(
        [
            go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=f"trial {n}")
            for n, pts in sorted(hist.items())
        ]
    )
    fig.update_layout(title="Intermediate values", xaxis_title="epoch", yaxis_title=METRIC)
    figures.append(fig)
    done = _completed(summary)
    names = sorted({k for t in done for k in (t.get("params") or {})})
    if done and names:
        dims = []
        for name in names:
            values, labels = _axis_values(done, name)
            if labels is None:
                dims.append({"label": name, "values": [(t.get("params") or {}).get(name) for t in done]})
            else:
                ticks = [labels.index(x) / max(1, len(labels) - 1) for x in labels]
                dims.append({"label": name, "values": values, "tickvals": ticks, "ticktext": labels})
        dims.append({"label": METRIC, "values": [t["value"] for t in done]})
        fig = go.Figure(go.Parcoords(line={"color": [t["value"] for t in done]}, dimensions=dims))
        fig.update_layout(title="Parallel coordinates")
        figures.append(fig)
    shares = importances(summary)
    if shares:
        fig = go.Figure(go.Bar(x=list(shares.values()), y=list(shares), orientation="h"))
        fig.update_layout(title="Parameter importances")
        figures.append(fig)
    # One page, plotly.js embedded once: it opens offline, inside the MLflow artifact viewer too.
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures)]
    path = out / "search_plots.html"
    path.write_text(
        "<html><head><meta charset='utf-8'></head><body>" + "".join(parts) + "</body></html>",
        encoding="utf-8",
    )
    return [path]


def write_plots(summary: Mapping[str, Any], sweep_dir: Path, out: Path) -> tuple[list[Path], str]:
    """Writes the plots into ``out``; returns the files and a note on what was drawn."""
    out.mkdir(parents=True, exist_ok=True)
    hist = histories(summary, sweep_dir)
    files = _png_plots(summary, hist, out)
    if importlib.util.find_spec("plotly") is None:
        return files, "PNG only (plotly is not installed; `pip install plotly` adds interactive plots)"
    return files + _html_plots(summary, hist, out), "PNG and interactive HTML (plotly)"
