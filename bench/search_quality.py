"""Search quality over many seeds: each search method replayed on a table of learning curves
(automl.replay: the real Optuna backends, simulated trials and workers), at several levels of
parallelism.

    python bench/search_quality.py --table bench/data/learning_curves.json \
        [--methods random,tpe,...] [--seeds 30] [--workers 1,4,16,64] [--trials 30] [--out FILE.json]

The budget is ``--trials`` full trials' worth of epochs (trials x the table's max_epochs); methods that
stop trials early may start more trials inside it. For each method and parallelism it prints:
- the median and interquartile range of the normalised regret ``(y* - y) / (y* - y_min)`` at 1/8, 1/4,
  1/2 and all of the budget, where y is the noise-free value of the best epoch seen so far (chosen by
  its noisy, observed value) and y*, y_min are the best and worst configurations of the table;
- the median epochs to reach the table's top-2 % value (over all seeds, one that never reached it
  counting as infinitely late; none when the median seed did not reach it) and how many reached it;
- the speed-up over random search: random's median epochs to that value over the method's.

A table comes from `bench/curve_table.py run`. For a smoke run without one,
`python -c "from pathlib import Path; from tests.automl.replay_table import write_table;
write_table(Path('/tmp/model_table.json'))"` writes the tests' learning-curve model table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automl.replay.curves import load_table  # noqa: E402
from automl.replay.methods import METHODS, replay_method  # noqa: E402
from automl.replay.surrogate import Surrogate  # noqa: E402

FRACTIONS = (0.125, 0.25, 0.5, 1.0)
DEFAULT_METHODS = "random,tao_hyperband,tpe,bayesian,hyperband,asha,bohb,pbt,auto"


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def median_epochs(reach: list[float]) -> float | None:
    """The median over every seed, one that never reached the value counting as infinitely late:
    None when the median seed did not reach it."""
    median = statistics.median(reach)
    return None if median == float("inf") else median


def measure(
    table_path: Path, methods: list[str], seeds: int, workers: list[int], trials: int
) -> dict[str, Any]:
    table = load_table(table_path)
    surrogate = Surrogate(table)
    y_star, y_min = max(table.values), min(table.values)
    target = table.quantile(0.98)
    budget = trials * table.max_epochs
    rows = []
    for level in workers:
        for method in methods:
            started = time.monotonic()
            regrets: dict[float, list[float]] = {f: [] for f in FRACTIONS}
            reach: list[float] = []  # inf: not reached within the budget
            for seed in range(seeds):
                result = replay_method(
                    method, table, epoch_budget=budget, workers=level, seed=seed, surrogate=surrogate
                )
                for fraction in FRACTIONS:
                    value = result.best_true_at(budget * fraction)
                    regret = 1.0 if value is None else (y_star - value) / (y_star - y_min)
                    regrets[fraction].append(max(0.0, regret))
                epochs = result.epochs_to(target)
                reach.append(float("inf") if epochs is None else float(epochs))
            rows.append(
                {
                    "method": method,
                    "workers": level,
                    "regret": {str(f): quartiles(v) for f, v in regrets.items()},
                    "epochs_to_top2": median_epochs(reach),
                    "reached": sum(1 for e in reach if e != float("inf")),
                    "seeds": seeds,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
            print(_line(rows[-1]), flush=True)
    by_level: dict[int, dict[str, Any]] = {}
    for row in rows:
        by_level.setdefault(row["workers"], {})[row["method"]] = row
    for row in rows:
        random_row = by_level[row["workers"]].get("random")
        mine, theirs = row["epochs_to_top2"], random_row and random_row["epochs_to_top2"]
        row["speedup_vs_random"] = round(theirs / mine, 2) if mine and theirs else None
    return {
        "table": str(table_path),
        "table_command": table.command,
        "configurations": len(table.configurations),
        "noise": table.noise,
        "y_star": y_star,
        "y_min": y_min,
        "top2_value": target,
        "budget_epochs": budget,
        "rows": rows,
    }


def _line(row: dict[str, Any]) -> str:
    regret = "  ".join(f"{f}: {row['regret'][str(f)][1]:.3f}" for f in FRACTIONS)
    return (
        f"workers {row['workers']:>3} {row['method']:<20} regret {regret}  top-2% in {row['epochs_to_top2']} "
        f"epochs ({row['reached']}/{row['seeds']} seeds)  [{row['seconds']} s]"
    )


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Table: {report['table']} ({report['configurations']} configurations, noise offset/epoch "
        f"{report['noise'][0]:.4f}/{report['noise'][1]:.4f}); budget {report['budget_epochs']} epochs; "
        f"top-2 % value {report['top2_value']:.4f}.",
        "",
        "| workers | method | regret at 1/4 (median [IQR]) | regret at the end | epochs to top-2 % (seeds) | x random |",
        "|---:|---|---|---|---|---:|",
    ]
    for row in report["rows"]:
        q = row["regret"][str(0.25)]
        e = row["regret"][str(1.0)]
        lines.append(
            f"| {row['workers']} | {row['method']} | {q[1]:.3f} [{q[0]:.3f}, {q[2]:.3f}] | {e[1]:.3f} "
            f"[{e[0]:.3f}, {e[2]:.3f}] | {row['epochs_to_top2']} ({row['reached']}/{row['seeds']}) | "
            f"{row['speedup_vs_random'] if row['speedup_vs_random'] is not None else '-'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="a curve table (bench/curve_table.py run)")
    parser.add_argument(
        "--methods", default=DEFAULT_METHODS, help=f"comma-separated, of: {', '.join(METHODS)}"
    )
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--workers", default="1,4,16,64", help="parallelism levels, comma-separated")
    parser.add_argument("--trials", type=int, default=30, help="budget: this many full trials' epochs")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    workers = [int(w) for w in args.workers.split(",")]
    report = measure(Path(args.table), methods, args.seeds, workers, args.trials)
    print()
    print(markdown(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
