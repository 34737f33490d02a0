"""What a sweep shows while it runs: one line per running trial and the best so far, then a table.

On a terminal the lines are redrawn in place (rich Live); elsewhere (CI, a log file) every event is
printed once as a plain line.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Collection, Sequence
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

__all__ = ["SweepDisplay", "trials_table"]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class SweepDisplay:
    def __init__(
        self,
        metric: str = "val_mAP50",
        *,
        maximize: bool = True,
        live: bool | None = None,
        console: Console | None = None,
    ):
        self.metric = metric
        self.maximize = maximize  # a minimized metric (val_loss): the best is the lowest
        self.console = console or Console(width=None if sys.stdout.isatty() else 160)
        self.live_mode = sys.stdout.isatty() if live is None else live
        self.running: dict[int, dict[str, Any]] = {}
        self.best: tuple[int, float] | None = None
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> SweepDisplay:
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def _render(self) -> Table:
        table = Table(title="running trials", expand=False)
        for column in ("trial", "epoch", self.metric, "best", "eta"):
            table.add_column(column)
        for number, row in sorted(self.running.items()):
            table.add_row(
                str(number),
                f"{row.get('epoch', '-')}/{row.get('max_epoch', '-')}",
                _fmt(row.get("value")),
                _fmt(row.get("best")),
                _hms(row.get("eta")),
            )
        if self.best:
            table.caption = f"best so far: trial {self.best[0]} {self.metric}={self.best[1]:.4f}"
        return table

    def _emit(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text)
            self._live.update(self._render())
        else:
            print(text, flush=True)

    def message(self, text: str) -> None:
        with self._lock:
            self._emit(text)

    def trial_started(
        self, number: int, params: dict[str, Any], max_epoch: int, first_epoch: int = 0, note: str = ""
    ) -> None:
        """``first_epoch``/``note``: a PBT clone starts where its parent's checkpoint left off."""
        with self._lock:
            self.running[number] = {
                "epoch": first_epoch,
                "max_epoch": max_epoch,
                "first": first_epoch,
                "started": time.time(),
            }
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "the spec's values"
            self._emit(f"trial {number} started{f' ({note})' if note else ''}: {shown}")

    def epoch(self, number: int, epoch: int, value: float | None) -> None:
        with self._lock:
            row = self.running.setdefault(number, {"started": time.time()})
            row["epoch"], row["value"] = epoch + 1, value
            if value is not None:
                pick = max if self.maximize else min
                row["best"] = pick(value, row.get("best", value))
            elapsed = time.time() - row["started"]
            done = max(1, epoch + 1 - int(row.get("first") or 0))  # epochs this process trained
            row["eta"] = elapsed / done * max(0, int(row.get("max_epoch") or epoch + 1) - epoch - 1)
            if value is not None and self._improves(value):
                self.best = (number, value)
            best = f" | best trial {self.best[0]} {self.best[1]:.4f}" if self.best else ""
            self._emit(
                f"trial {number} epoch {epoch}: {self.metric}={_fmt(value)} eta {_hms(row['eta'])}{best}"
            )

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best[1] if self.maximize else value < self.best[1]

    def trial_finished(self, number: int, state: str, value: float | None, reason: str | None) -> None:
        with self._lock:
            self.running.pop(number, None)
            tail = f" ({reason})" if reason else ""
            self._emit(f"trial {number} {state}: best {self.metric}={_fmt(value)}{tail}")

    def final_table(
        self, trials: Sequence[dict[str, Any]], best_number: int | None, front: Collection[int] | None = None
    ) -> None:
        table = trials_table(trials, best_number, self.metric, front)
        self.console.print(table)


def _short(name: str, names: Sequence[str]) -> str:
    """The last part of a dotted name, or more of it when two parameters share that last part."""
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        short = ".".join(parts[-depth:])
        if sum(1 for n in names if n.endswith("." + short) or n == short) == 1:
            return short
    return name


def trials_table(
    trials: Sequence[dict[str, Any]],
    best_number: int | None,
    metric: str = "val_mAP50",
    front: Collection[int] | None = None,
) -> Table:
    """The trials, the best marked ``*``; ``front`` (a multi-objective sweep's Pareto front, trial
    numbers) adds a column that marks the front's trials."""
    names = sorted({k for t in trials for k in (t.get("params") or {})})
    table = Table(title="trials")
    latency = any(t.get("latency_ms") is not None for t in trials)  # a --max-latency-ms sweep
    pareto = ("pareto",) if front is not None else ()
    columns = ("trial", "state", metric, *(("latency ms",) if latency else ()), *pareto, "epochs", "seconds")
    for column in (*columns, "parameters", "reason"):
        table.add_column(column, overflow="fold")
    for t in trials:
        mark = " *" if t["number"] == best_number else ""
        params = t.get("params") or {}
        shown = " ".join(f"{_short(n, names)}={_fmt(params[n], 3)}" for n in names if n in params) or "-"
        epochs = t.get("last_epoch")
        table.add_row(
            f"{t['number']}{mark}",
            t.get("state", "-"),
            _fmt(t.get("value")),
            *((_fmt(t.get("latency_ms"), 3),) if latency else ()),
            *(("front" if t["number"] in front else "",) if front is not None else ()),
            "-" if epochs is None else str(int(epochs) + 1),
            _fmt(t.get("seconds"), 3),
            shown,
            (t.get("error") or "")[:120],
        )
    return table
