"""A table of real learning curves for replaying searches (issue 16): many configurations of the
default train space, each trained to the full epoch budget by the product's own trainer, the first
ones again with other seeds to measure the noise.

    python bench/curve_table.py run --workdir DIR [--table bench/data/learning_curves.json]
        [--configs 120] [--epochs 10] [--repeat 20] [--seeds 3] [--hours H]
    python bench/curve_table.py show [--table ...]

`run` generates the synthetic dataset in DIR/data (`rtdetr dataset synth --size 96 --train 400
--val 60 --test 20`, seed 0: the same images on every machine), builds the search space that
`automl run` builds from schemas/train.schema.json (its automl_default_parameters plus the schedule
and recipe keys in EXTRA) around configs/fast.yaml (96 px), and draws the configurations with a
seeded random sampler (configuration i is the same however many are drawn). Each run is
`rtdetr train` of one configuration, validating every epoch; configurations below `--repeat` are
trained with every seed in 0 .. seeds-1, the others with seed 0.

The table file is rewritten (whole) after every run and is what gets committed: runs already in it
are skipped, so a later session (or machine) continues where the last one stopped. It is hours of
CPU: run it in the background (`nohup ... &`) and bound a session's share with `--hours`.

Each run's row: its configuration number, seed, parameters and per-epoch [epoch, seconds since the
training started, val_mAP50, val_loss]; a run that failed keeps its reason instead of rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from demo_learning import curve  # noqa: E402  (bench/ is a folder of scripts, not a package)

from automl.launch.trial_spec import spec_for_params  # noqa: E402
from automl.results.summary import write_json_atomic  # noqa: E402
from automl.space.build import build_space  # noqa: E402
from automl.space.params import SearchSpace  # noqa: E402
from automl.space.sampling import sample_params  # noqa: E402
from automl.space.schema_rows import load_schema  # noqa: E402

BIN = Path(sys.executable).parent
TABLE = ROOT / "bench/data/learning_curves.json"
SYNTH = ["--size", "96", "--train", "400", "--val", "60", "--test", "20"]
# the default train space (automl_default_parameters) plus the schedule and recipe keys
EXTRA = [
    "train.optim.lr_scheduler",
    "train.optim.warmup_steps",
    "model.class_loss",
    "train.enable_ema",
    "dataset.augmentation.mosaic_prob",
    "dataset.augmentation.mixup_prob",
]


def base_spec(work: Path, epochs: int) -> dict[str, Any]:
    """configs/fast.yaml (96 px) on the workdir's data, trained for ``epochs``."""
    spec = yaml.safe_load((ROOT / "configs/fast.yaml").read_text())
    spec = json.loads(json.dumps(spec).replace("data/synthetic/", f"{work}/data/"))
    spec["train"]["num_epochs"] = epochs
    spec["train"]["checkpoint_interval"] = epochs  # one checkpoint per run (deleted once it ends)
    return spec


def table_space(spec: dict[str, Any]) -> SearchSpace:
    schema = load_schema(ROOT / "schemas/train.schema.json")
    defaults = list(schema["automl_default_parameters"])
    return build_space(schema, spec, hyperparameters=defaults + [k for k in EXTRA if k not in defaults])


def configurations(space: SearchSpace, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """The first ``count`` configurations of a seeded random sampler over ``space``."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(count):
        trial = study.ask()
        out.append(sample_params(space, trial))
        study.tell(trial, 0.0)
    return out


def same_table(data: dict[str, Any], space: SearchSpace, epochs: int) -> bool:
    """Whether a table file holds runs of this space and epoch count (so a run may add to it)."""
    searched = json.loads(json.dumps(space.as_dict()))  # as the file holds it (tuples are lists)
    return data.get("max_epochs") == epochs and data.get("space") == searched


def load(table: Path) -> dict[str, Any]:
    return json.loads(table.read_text()) if table.is_file() else {}


def train_one(work: Path, spec: dict[str, Any], number: int, seed: int) -> dict[str, Any]:
    folder = work / "runs" / f"{number:04d}-seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)  # a run cut short earlier starts over, not resumed
    folder.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "results_dir": str(folder), "train": {**spec["train"], "seed": seed}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with (folder / "train.log").open("w") as log:
        proc = subprocess.run(
            [f"{BIN}/rtdetr", "train", "-e", str(folder / "spec.yaml")], stdout=log, stderr=subprocess.STDOUT
        )
    for checkpoint in (folder / "train").glob("*.pth"):  # ~150 MB each; the table needs status.json only
        checkpoint.unlink()
    status = folder / "train/status.json"
    rows = _rows(status) if status.is_file() else []
    if proc.returncode != 0 or len(rows) < int(spec["train"]["num_epochs"]):
        tail = (folder / "train.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode} after {len(rows)} epochs: {tail[0][:300]}"}
    return {"epochs": rows}


def _rows(status: Path) -> list[list[float]]:
    lines = [json.loads(x) for x in status.read_text().splitlines() if x.strip()]
    losses = {
        int(x["epoch"]): float(x["kpi"]["val_loss"])
        for x in lines
        if x.get("status") == "RUNNING" and "val_loss" in (x.get("kpi") or {})
    }
    # status.json counts epochs from 0; the table from 1 (the row after the first epoch is epoch 1)
    return [
        [e + 1, round(s, 1), round(m, 4), round(losses.get(e, float("nan")), 4)]
        for e, s, m, _ in curve(status)
    ]


def run(
    work: Path, table: Path, count: int, epochs: int, repeat: int, seeds: int, hours: float | None
) -> None:
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "data/label_map.txt").is_file():
        synth = [f"{BIN}/rtdetr", "dataset", "synth", "--out", str(work / "data"), *SYNTH]
        subprocess.run(synth, check=True, stdout=subprocess.DEVNULL)
    spec = base_spec(work, epochs)
    space = table_space(spec)
    data = load(table)
    if data and not same_table(data, space, epochs):
        raise SystemExit(f"{table}: holds another space or epoch count; give another --table")
    data = {
        "command": "python bench/curve_table.py run " + shlex.join(sys.argv[2:]),
        "data": "rtdetr dataset synth " + " ".join(SYNTH),
        "base_spec": "configs/fast.yaml",
        "space": space.as_dict(),
        "max_epochs": epochs,
        "runs": data.get("runs", []),
    }
    done = {(r["trial"], r["seed"]) for r in data["runs"]}
    for number, params in enumerate(configurations(space, count)):
        for seed in range(seeds if number < repeat else 1):
            if (number, seed) in done:
                continue
            if hours is not None and time.monotonic() - started > hours * 3600:
                print(f"--hours {hours} used; {len(data['runs'])} runs in {table}", flush=True)
                return
            trial_spec = spec_for_params(spec, params, epochs, True)
            t0 = time.monotonic()
            outcome = train_one(work, trial_spec, number, seed)
            row = {"trial": number, "seed": seed, "params": params, **outcome}
            row["machine"] = f"{platform.node()} {os.cpu_count()} cpus"
            row["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
            data["runs"].append(row)
            table.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(table, data)
            last = outcome["epochs"][-1][2] if "epochs" in outcome else outcome["error"]
            print(f"config {number} seed {seed}: {last} ({time.monotonic() - t0:.0f} s)", flush=True)


def show(table: Path) -> None:
    data = load(table)
    runs = data.get("runs", [])
    ok = [r for r in runs if r.get("epochs")]
    finals = sorted(max(row[2] for row in r["epochs"]) for r in ok)
    print(
        f"{table}: {len(runs)} runs ({len(runs) - len(ok)} failed), {len({r['trial'] for r in runs})} configurations"
    )
    if finals:
        print(
            f"best val_mAP50 per run: min {finals[0]:.3f}, median {finals[len(finals) // 2]:.3f}, max {finals[-1]:.3f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("run", "show"))
    parser.add_argument("--workdir")
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--configs", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hours", type=float, help="start no run after this many hours")
    args = parser.parse_args()
    if args.what == "run":
        if not args.workdir:
            parser.error("run needs --workdir")
        run(
            Path(args.workdir).resolve(),
            Path(args.table),
            args.configs,
            args.epochs,
            args.repeat,
            args.seeds,
            args.hours,
        )
    else:
        show(Path(args.table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
