"""A table of real learning curves for replaying searches (issue 16): many configurations trained
to the full epoch budget by the product itself, some of them again with other seeds.

    python bench/curve_table.py run    --workdir DIR [--trials 120] [--epochs 12] [--repeat 20] [--seeds 3]
    python bench/curve_table.py export --workdir DIR --out FILE.json

`run` generates the synthetic dataset in DIR/data (200/60 images at 64 px), then
  1. `automl run --algorithm random --trials N --max-epochs E -e <spec>` over the default train space
     plus the schedule and recipe keys (random sampling, no pruning: every trial runs every epoch);
  2. `rtdetr train` of the first `--repeat` configurations again with `train.seed` 1 .. seeds-1, to
     measure the noise.
It is hours of CPU: run it in the background (`nohup ... &`); it resumes where it stopped
(`automl run --resume` for the sweep, finished repeats are skipped).

`export` writes the compact table: the commands, the searched space, and for each run its
parameters, seed and per-epoch rows [epoch, seconds since start, val_mAP50, val_loss].
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from demo_learning import curve  # noqa: E402  (bench/ is a folder of scripts, not a package)

BIN = Path(sys.executable).parent
SWEEP = "table"
# the default train space (automl_default_parameters) plus the schedule and recipe keys
EXTRA = [
    "train.optim.lr_scheduler",
    "train.optim.warmup_steps",
    "model.class_loss",
    "train.enable_ema",
    "dataset.augmentation.mosaic_prob",
    "dataset.augmentation.mixup_prob",
]


def table_spec(work: Path, epochs: int) -> Path:
    """configs/fast.yaml at 64 px on the workdir's data, trained for ``epochs``."""
    spec = yaml.safe_load((ROOT / "configs/fast.yaml").read_text())
    text = json.dumps(spec).replace("data/synthetic/", f"{work}/data/")
    spec = json.loads(text)
    size = [64, 64]
    spec["dataset"]["augmentation"].update(
        {"multi_scales": [64], "train_spatial_size": size, "eval_spatial_size": size}
    )
    spec["train"]["num_epochs"] = epochs
    spec["results_dir"] = str(work / "unused")
    path = work / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def default_parameters() -> list[str]:
    schema = json.loads((ROOT / "schemas/train.schema.json").read_text())
    return list(schema["automl_default_parameters"])


def run(work: Path, trials: int, epochs: int, repeat: int, seeds: int) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "command.txt").write_text(shlex.join(["python", *sys.argv]) + "\n")
    if not (work / "data/label_map.txt").is_file():
        synth = [f"{BIN}/rtdetr", "dataset", "synth", "--out", str(work / "data"), "--size", "64"]
        synth += ["--train", "200", "--val", "60", "--test", "20"]
        subprocess.run(synth, check=True, stdout=subprocess.DEVNULL)
    spec = table_spec(work, epochs)
    names = default_parameters() + [k for k in EXTRA if k not in default_parameters()]
    sweep = work / "results" / SWEEP
    if (sweep / "summary.json").is_file():
        cli = [f"{BIN}/automl", "run", "--resume", str(sweep)]
    else:
        cli = [
            *[f"{BIN}/automl", "run", "-e", str(spec), "--algorithm", "random", "--trials", str(trials)],
            *["--max-epochs", str(epochs), "--seed", "0", "--no-pipeline", "--no-track"],
            *["--results-dir", str(work / "results"), "--name", SWEEP],
            *["--setting", f"automl_hyperparameters=[{','.join(names)}]"],
        ]
    subprocess.run(cli, check=False)
    summary = json.loads((sweep / "summary.json").read_text())
    done = [t for t in summary["trials"] if t["state"] == "COMPLETE" and not t.get("requeued")]
    for trial in done[:repeat]:
        for seed in range(1, seeds):
            folder = work / "repeats" / f"{trial['number']:04d}-seed{seed}"
            if (folder / "train/status.json").is_file() and '"SUCCESS"' in (
                folder / "train/status.json"
            ).read_text():
                continue
            trial_spec = yaml.safe_load((Path(trial["folder"]) / "spec.yaml").read_text())
            trial_spec["results_dir"] = str(folder)
            trial_spec.setdefault("train", {})["seed"] = seed
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "spec.yaml").write_text(yaml.safe_dump(trial_spec, sort_keys=False))
            with (folder / "train.log").open("w") as log:
                train = [f"{BIN}/rtdetr", "train", "-e", str(folder / "spec.yaml")]
                subprocess.run(train, stdout=log, stderr=subprocess.STDOUT, check=False)


def rows(status: Path) -> list[list[float]]:
    lines = [json.loads(x) for x in status.read_text().splitlines() if x.strip()]
    losses = {
        int(x["epoch"]): float(x["kpi"]["val_loss"])
        for x in lines
        if x.get("status") == "RUNNING" and "val_loss" in (x.get("kpi") or {})
    }
    return [
        [e, round(s, 1), round(m, 4), round(losses.get(e, float("nan")), 4)] for e, s, m, _ in curve(status)
    ]


def export(work: Path, out: Path) -> dict[str, Any]:
    sweep = work / "results" / SWEEP
    summary = json.loads((sweep / "summary.json").read_text())
    runs = []
    for trial in summary["trials"]:
        status = Path(trial["folder"]) / "train/status.json"
        if trial["state"] == "COMPLETE" and not trial.get("requeued") and status.is_file():
            runs.append(
                {"trial": trial["number"], "seed": 0, "params": trial["params"], "epochs": rows(status)}
            )
    by_number = {r["trial"]: r for r in runs}
    for status in sorted((work / "repeats").glob("*/train/status.json")):
        number, seed = status.parent.parent.name.split("-seed")
        base = by_number.get(int(number))
        if base is not None and curve(status):
            runs.append(
                {"trial": int(number), "seed": int(seed), "params": base["params"], "epochs": rows(status)}
            )
    table = {
        "command": (work / "command.txt").read_text().strip() if (work / "command.txt").is_file() else None,
        "space": summary.get("space"),
        "max_epochs": summary.get("max_epochs"),
        "runs": runs,
    }
    out.write_text(json.dumps(table, separators=(",", ":")))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("run", "export"))
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="bench/data/learning_curves.json")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    if args.what == "run":
        run(work, args.trials, args.epochs, args.repeat, args.seeds)
    else:
        table = export(work, Path(args.out))
        best = max((r["epochs"][-1][2] for r in table["runs"] if r["epochs"]), default=None)
        print(f"{len(table['runs'])} runs written to {args.out}; best final val_mAP50 {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
