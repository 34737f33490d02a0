"""What the orchestrator costs per trial: `automl run` over N tiny trials, split into the sweep's own
time and each trial process's start + imports, data, model set-up, training/validation and the rest.

Usage: python bench/overhead.py [--trials 8] [--workdir bench-overhead] [--no-track]
Goal (issue: automl run): the orchestrator adds under 1 s per trial beyond what the trial process needs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import tiny_spec, write_spec  # noqa: E402  (the tests' tiny preset)


def status_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workdir", default="bench-overhead")
    parser.add_argument("--no-track", action="store_true")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    if not (data / "label_map.txt").is_file():
        subprocess.run(
            [
                *[sys.executable, "-m", "model.cli", "dataset", "synth", "--out", str(data)],
                *["--train", "16", "--val", "8", "--test", "8", "--size", "64"],
            ],
            check=True,
            capture_output=True,
        )
    spec = write_spec(work / "spec.yaml", tiny_spec(data, work / "unused", train={"num_epochs": 1}))
    name = time.strftime("overhead-%H%M%S")
    cmd = [
        *[sys.executable, "-m", "automl.cli", "run", "-e", str(spec), "--trials", str(args.trials)],
        *["--max-epochs", "1", "--results-dir", str(work), "--name", name, "--algorithm", "random"],
        *["--seed", "0", "--setting", "automl_hyperparameters=[train.optim.lr]"],
    ]
    if args.no_track:
        cmd.append("--no-track")
    start = time.time()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    wall = time.time() - start
    summary = json.loads((work / name / "summary.json").read_text())
    trials = summary["trials"]
    first_start = min(t["started"] for t in trials)
    rows, trial_total = [], 0.0
    for t in trials:
        lines = status_lines(Path(t["folder"]) / "train" / "status.json")
        setup = next(x for x in lines if x["status"] == "STARTED").get("setup_seconds", {})
        train = sum(float(x.get("epoch_seconds", 0.0)) for x in lines if x["status"] == "RUNNING")
        seconds = float(t["seconds"])
        trial_total += seconds
        rest = seconds - sum(setup.values()) - train
        rows.append(
            (
                t["number"],
                seconds,
                setup.get("start_and_imports", 0.0),
                setup.get("data", 0.0),
                setup.get("model", 0.0),
                train,
                rest,
            )
        )
    n = len(trials)
    print(
        f"{n} trials, `automl run` wall {wall:.1f} s, sum of trial processes {trial_total:.1f} s, "
        f"sweep start-up before the first trial {first_start - summary['started']:.1f} s\n"
    )
    print("| trial | process s | start+imports s | data s | model s | train+val s | rest s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |")
    between = wall - trial_total - (first_start - summary["started"])
    print(f"\norchestrator time per trial beyond the trial processes (after start-up): {between / n:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
