"""How much training a search needs: best val_mAP50 against consumed epochs, three ways.

    python bench/search_efficiency.py --workdir /tmp/bench-search [--seeds 0 1 2] [--budget 24] [--epochs 6]

Every method gets the same epoch budget on the same data (the synthetic shapes set at 64x64 with 200
train and 50 validation images, the demo preset with its input size set to 64) and runs real
`automl run` sweeps, one trial at a time:

  tao     TAO-style sampling (reference/tao.md 3.2): random, uniform on a linear scale over the
          schema's own bounds (lr, weight decay and the like in [0, 1], clamped to min + 1e-7),
          an infinite bound collapsed to the default (batch_size in [1, 8], num_queries in [1, 30]),
          every trial trained to the full epoch count.
  random  random sampling over this tool's ranges (log scale for ranges of two decades or more,
          finite ranges around the default), every trial trained to the full epoch count.
  ours    this tool's default: TPE + Hyperband over this tool's ranges; poor trials stop early.

A sweep is stopped once its trials have trained `--budget` epochs in all; each epoch's val_mAP50
comes from the trial's own status.json, so the curve is per epoch, not per trial. Parameters that
cannot change the result (dataset.workers, train.ema.decay with EMA off, lr_step_size with
MultiStep, momentum with AdamW) are left out of all three. The result table is printed as Markdown
and written to <workdir>/search_efficiency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SIZE = 64
SPEC_OVERRIDES = [
    f"dataset.augmentation.multi_scales=[{SIZE}]",
    f"dataset.augmentation.train_spatial_size=[{SIZE},{SIZE}]",
    f"dataset.augmentation.eval_spatial_size=[{SIZE},{SIZE}]",
]
SEARCHED = [
    "dataset.augmentation.distortion_prob",
    "dataset.augmentation.iou_crop_prob",
    "dataset.batch_size",
    "model.dec_layers",
    "model.enc_layers",
    "model.num_queries",
    "model.num_select",
    "train.optim.lr",
    "train.optim.lr_backbone",
    "train.optim.lr_decay",
    "train.optim.weight_decay",
]
# TAO's sampling of these keys for the demo preset (reference/tao.md 3.2): floats with both bounds
# linear in [min, max] (a 0 minimum is clamped to 1e-7); an int with an infinite maximum gets
# [min, default]; an int with no maximum gets [max(1, d // 2), 2 d].
TAO_RANGES = {
    "dataset.augmentation.distortion_prob": "0:1:linear",
    "dataset.augmentation.iou_crop_prob": "0:1:linear",
    "dataset.batch_size": "1:8",
    "model.dec_layers": "1:6",
    "model.enc_layers": "1:2",
    "model.num_queries": "1:30",
    "model.num_select": "1:1000",
    "train.optim.lr": "1e-7:1:linear",
    "train.optim.lr_backbone": "1e-7:1:linear",
    "train.optim.lr_decay": "1e-7:1:linear",
    "train.optim.weight_decay": "1e-7:1:linear",
}
METHODS = {
    "tao": ["--algorithm", "random", *[f"--param={k}={v}" for k, v in TAO_RANGES.items()]],
    "random": ["--algorithm", "random"],
    "ours": ["--algorithm", "hyperband"],
}


def make_data(workdir: Path) -> None:
    data = workdir / "data" / "synthetic"
    if not (data / "label_map.txt").is_file():
        subprocess.run(
            [
                *[str(BIN / "rtdetr"), "dataset", "synth", "--out", str(data)],
                *["--size", str(SIZE), "--train", "200", "--val", "50", "--test", "50"],
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def epoch_values(trial: dict, sweep: Path) -> list[float]:
    """val_mAP50 of each epoch a trial trained, in order, from its status.json."""
    folder = Path(trial.get("folder") or sweep / "trials" / f"{trial['number']:04d}")
    values: list[float] = []
    for path in (folder / "train" / "status.json", folder / "status.json"):
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                kpi = row.get("kpi") or {}
                if "epoch" in row and "val_mAP50" in kpi:
                    values.append(float(kpi["val_mAP50"]))
            break
    return values


def curve(sweep: Path) -> list[float]:
    """Running best val_mAP50 after each consumed epoch, trials in the order they ran."""
    summary = json.loads((sweep / "summary.json").read_text())
    best, out = 0.0, []
    for trial in sorted(summary["trials"], key=lambda t: t["number"]):
        for value in epoch_values(trial, sweep):
            best = max(best, value)
            out.append(best)
    return out


def run_method(method: str, seed: int, workdir: Path, budget: int, epochs: int) -> dict:
    sweep = workdir / "runs" / f"{method}-s{seed}"
    if (sweep / "done.json").is_file():
        return json.loads((sweep / "done.json").read_text())
    if sweep.exists():
        subprocess.run(["rm", "-rf", str(sweep)], check=True)
    cmd = [
        *[str(BIN / "automl"), "run", "-e", str(ROOT / "configs" / "demo.yaml"), *SPEC_OVERRIDES],
        *["--policy", "auto", "--trials", "200", "--max-epochs", str(epochs), "--seed", str(seed)],
        *["--results-dir", str(workdir / "runs"), "--name", sweep.name],
        *["--no-track", f"--setting=automl_hyperparameters=[{','.join(SEARCHED)}]", *METHODS[method]],
    ]
    usage = subprocess.run(
        [str(BIN / "automl"), "run", "--help"], capture_output=True, text=True, check=False
    )
    if "--no-pipeline" in usage.stdout:
        cmd.append("--no-pipeline")
    started = time.monotonic()
    log = open(workdir / f"{sweep.name}.log", "w")
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while proc.poll() is None:
            time.sleep(3)
            if (sweep / "summary.json").is_file() and len(curve(sweep)) >= budget:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    points = curve(sweep)[:budget]
    summary = json.loads((sweep / "summary.json").read_text())
    states: dict[str, int] = {}
    for trial in summary["trials"]:
        states[trial["state"]] = states.get(trial["state"], 0) + 1
    result = {
        "method": method,
        "seed": seed,
        "curve": points,
        "epochs": len(points),
        "best": points[-1] if points else 0.0,
        "trials": states,
        "seconds": round(time.monotonic() - started, 1),
    }
    (sweep / "done.json").write_text(json.dumps(result))
    return result


def epochs_to_reach(points: list[float], target: float) -> int | None:
    for i, value in enumerate(points):
        if value >= target:
            return i + 1
    return None


def report(results: list[dict], budget: int) -> str:
    lines = [
        "| seed | method | best val_mAP50 at budget | epochs to reach TAO-style's final best | trials | seconds |",
        "|---:|---|---:|---:|---|---:|",
    ]
    by_seed: dict[int, dict[str, dict]] = {}
    for r in results:
        by_seed.setdefault(r["seed"], {})[r["method"]] = r
    for seed, methods in sorted(by_seed.items()):
        target = methods["tao"]["best"] if "tao" in methods else None
        for name in METHODS:
            if name not in methods:
                continue
            r = methods[name]
            reach = epochs_to_reach(r["curve"], target) if target is not None else None
            trials = ", ".join(f"{k} {v}" for k, v in sorted(r["trials"].items()))
            lines.append(
                f"| {seed} | {name} | {r['best']:.3f} | {reach if reach else '-'} of {budget} | {trials} "
                f"| {r['seconds']:.0f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-search"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=24, help="epochs per sweep (default 24)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of a full trial (default 6)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    make_data(args.workdir)
    results = []
    for seed in args.seeds:
        for method in args.methods:
            result = run_method(method, seed, args.workdir, args.budget, args.epochs)
            results.append(result)
            print(
                f"seed {seed} {method}: best {result['best']:.3f} after {result['epochs']} epochs "
                f"({result['seconds']:.0f} s)",
                flush=True,
            )
            (args.workdir / "search_efficiency.json").write_text(json.dumps(results, indent=1))
    print(report(results, args.budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
