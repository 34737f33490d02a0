"""How fast the embedded default learns: plain training of configs/demo.yaml on the synthetic dataset.

Usage: python bench/demo_learning.py [--workdir DIR] [--status PATH]
Generates the synthetic dataset in DIR/data/synthetic (if missing), runs `rtdetr train -e configs/demo.yaml`
there, and prints the learning curve (epoch, wall seconds since the start, val_mAP50, val_mAP) as a
markdown table. With --status it only prints the curve of an existing status.json.
Goal (issue: train action): val_mAP50 >= 0.9 within 5 minutes of training on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def curve(status: Path) -> list[tuple[int, float, float, float]]:
    lines = [json.loads(x) for x in status.read_text().splitlines() if x.strip()]

    def stamp(line: dict) -> datetime:
        return datetime.strptime(f"{line['date']} {line['time']}", "%m/%d/%Y %H:%M:%S")

    start = stamp(next(x for x in lines if x["status"] == "STARTED"))
    rows = []
    for line in lines:
        kpi = line.get("kpi") or {}
        if line["status"] == "RUNNING" and "val_mAP50" in kpi:
            seconds = (stamp(line) - start).total_seconds()
            rows.append((int(line["epoch"]), seconds, float(kpi["val_mAP50"]), float(kpi["val_mAP"])))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="bench-demo")
    parser.add_argument("--status", help="only print the curve of this status.json")
    args = parser.parse_args()
    if args.status:
        status = Path(args.status)
    else:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        cli = [sys.executable, "-m", "model.cli"]
        if not (work / "data/synthetic/label_map.txt").is_file():
            subprocess.run([*cli, "dataset", "synth", "--out", "data/synthetic"], cwd=work, check=True)
        subprocess.run([*cli, "train", "-e", str(ROOT / "configs/demo.yaml")], cwd=work, check=True)
        status = work / "results/demo/train/status.json"
    print("| epoch | seconds | val_mAP50 | val_mAP |\n|---:|---:|---:|---:|")
    for epoch, seconds, map50, map_ in curve(status):
        print(f"| {epoch} | {seconds:.0f} | {map50:.3f} | {map_:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
