"""How fast each recipe learns, side by side on the same data, machine and wall time.

    python bench/learning_race.py [--workdir bench-race] [--seconds 360] [--dataset default|dense]
                                  [--recipes tao fast] [--peer-python PATH]

One invocation trains, one after the other (never at once, so they do not share the cores):

  tao    the TAO-default recipe, which has parity with the official RT-DETRv2 code: configs/demo.yaml
         (MultiStep lr with warm-up, VFL, no EMA, flip only);
  fast   the fast-learning recipe: configs/fast.yaml (flat-cosine lr, MAL, EMA with warm-up, 96 px);
  yolo   with --peer-python (a Python with `ultralytics` installed, e.g. a separate venv): Ultralytics
         YOLO11n from its yaml (no weights downloaded), plain `train(time=...)`, the same images at the
         same input size, batch size and worker count.

Each of ours runs `rtdetr train` with `train.time_budget=<seconds>s`, so its epochs and schedule are
fitted to the same deadline the peer's `time=` gives it. Datasets (generated under the workdir):
`default` is `rtdetr dataset synth` as the demo uses it (400/100 images, 128 px, 3 classes, 0-4
objects); `dense` adds `--dense --classes 6` (4-12 objects of 7-20 % of the side, 6 classes).

Printed (Markdown) and written to <workdir>/<dataset>/learning_race.json: each run's val_mAP50 against
wall seconds (since its status.json STARTED line; the peer's own `time` column) and epochs, then a
summary: best, seconds to 0.90 / 0.95 / 0.99, best by 130 s and by half the budget, and each
recipe's ratio to `tao`. The peer's mAP50 is Ultralytics' own evaluator on the same validation
images (101-point interpolation), ours is pycocotools'; they agree closely but are not identical.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from demo_learning import curve  # noqa: E402  (bench/ is a folder of scripts, not a package)

RECIPES = {"tao": ROOT / "configs/demo.yaml", "fast": ROOT / "configs/fast.yaml"}
DATASETS = {"default": [], "dense": ["--dense", "--classes", "6"]}
THRESHOLDS = (0.90, 0.95, 0.99)
PEER = """
import sys
from ultralytics import YOLO
data, seconds, imgsz, batch, workers, project = sys.argv[1:7]
model = YOLO("yolo11n.yaml")
model.train(data=data, epochs=10000, time=float(seconds) / 3600, imgsz=int(imgsz), batch=int(batch),
            workers=int(workers), device="cpu", pretrained=False, amp=False, plots=False, seed=0,
            project=project, name="yolo", exist_ok=True, verbose=False)
"""


def make_dataset(folder: Path, dataset: str) -> dict:
    """The synthetic set under folder/data/synthetic (reused when there); its class count."""
    out = folder / "data/synthetic"
    if not (out / "label_map.txt").is_file():
        cli = [sys.executable, "-m", "model.cli", "dataset", "synth", "--out", str(out), *DATASETS[dataset]]
        subprocess.run(cli, check=True, stdout=subprocess.DEVNULL)
    classes = len((out / "label_map.txt").read_text().split())
    return {"root": out, "classes": classes}


def run_ours(folder: Path, recipe: str, seconds: float, classes: int) -> list[dict]:
    results = folder / recipe
    overrides = [
        f"results_dir={results}",
        f"train.time_budget={int(seconds)}s",
        f"dataset.num_classes={classes + 1}",
        f"dataset.eval_class_ids=[{','.join(str(k) for k in range(1, classes + 1))}]",
    ]
    log = folder / f"{recipe}.log"
    with log.open("w") as out:
        cli = [sys.executable, "-m", "model.cli", "train", "-e", str(RECIPES[recipe]), *overrides]
        subprocess.run(cli, cwd=folder, check=True, stdout=out, stderr=subprocess.STDOUT)
    return [
        {"epoch": e, "seconds": s, "val_mAP50": m50} for e, s, m50, _ in curve(results / "train/status.json")
    ]


def yolo_dataset(data: Path, classes: int) -> Path:
    """The COCO splits as an Ultralytics dataset: images extracted, one label file per image."""
    out = data.parent / "yolo"
    for split in ("train", "val"):
        images, labels = out / split / "images", out / split / "labels"
        if images.is_dir():
            continue
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        with tarfile.open(data / split / "images.tar.gz") as tar:
            tar.extractall(images, filter="data")
        coco = json.loads((data / split / "annotations.json").read_text())
        rows: dict[int, list[str]] = {image["id"]: [] for image in coco["images"]}
        size = {image["id"]: (image["width"], image["height"]) for image in coco["images"]}
        for ann in coco["annotations"]:
            (x, y, w, h), (width, height) = ann["bbox"], size[ann["image_id"]]
            rows[ann["image_id"]].append(
                f"{ann['category_id'] - 1} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} "
                f"{w / width:.6f} {h / height:.6f}"
            )
        for image in coco["images"]:
            stem = Path(image["file_name"]).stem
            (labels / f"{stem}.txt").write_text("".join(f"{r}\n" for r in rows[image["id"]]))
    names = (data / "label_map.txt").read_text().split()[:classes]
    spec = out / "data.yaml"
    spec.write_text(
        f"path: {out}\ntrain: train/images\nval: val/images\nnames:\n"
        + "".join(f"  {k}: {name}\n" for k, name in enumerate(names))
    )
    return spec


def run_peer(python: str, folder: Path, data: Path, classes: int, seconds: float) -> list[dict]:
    spec = yolo_dataset(data, classes)
    script = folder / "yolo_train.py"
    script.write_text(PEER)
    log = folder / "yolo.log"
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(folder / "yolo-config")}
    with log.open("w") as out:
        args = [python, str(script), str(spec), str(seconds), "128", "8", "1", str(folder)]
        subprocess.run(args, cwd=folder, check=True, stdout=out, stderr=subprocess.STDOUT, env=env)
    with (folder / "yolo/results.csv").open() as f:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]
    return [
        {"epoch": int(r["epoch"]) - 1, "seconds": float(r["time"]), "val_mAP50": float(r["metrics/mAP50(B)"])}
        for r in rows
    ]


def summarise(points: list[dict], seconds: float) -> dict:
    def first(threshold: float) -> float | None:
        return next((p["seconds"] for p in points if p["val_mAP50"] >= threshold), None)

    def best_by(limit: float) -> float:
        return max((p["val_mAP50"] for p in points if p["seconds"] <= limit), default=0.0)

    return {
        "epochs": len(points),
        "seconds": points[-1]["seconds"] if points else 0.0,
        "best": max((p["val_mAP50"] for p in points), default=0.0),
        **{f"to_{t:.2f}": first(t) for t in THRESHOLDS},
        "best_by_130s": best_by(130),
        "best_by_half": best_by(seconds / 2),
    }


def report(runs: dict[str, list[dict]], summary: dict[str, dict], seconds: float) -> str:
    lines = []
    for name, points in runs.items():
        lines += [f"\n{name}: val_mAP50 against wall seconds and epochs\n", "| epoch | seconds | val_mAP50 |"]
        lines += ["|---:|---:|---:|"] + [
            f"| {p['epoch']} | {p['seconds']:.0f} | {p['val_mAP50']:.3f} |" for p in points
        ]

    def sec(value: float | None) -> str:
        return "never" if value is None else f"{value:.0f} s"

    lines += [
        f"\nsummary (budget {seconds:.0f} s each)\n",
        "| run | epochs | best | to 0.90 | to 0.95 | to 0.99 | best by 130 s | best by half |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['epochs']} | {s['best']:.3f} | {sec(s['to_0.90'])} | {sec(s['to_0.95'])} | "
            f"{sec(s['to_0.99'])} | {s['best_by_130s']:.3f} | {s['best_by_half']:.3f} |"
        )
    base = summary.get("tao")
    if base:
        lines.append("\nratios to tao (time: tao's seconds / this run's, >1 is faster; best: difference)")
        for name, s in summary.items():
            if name == "tao":
                continue
            parts = [f"best {s['best'] - base['best']:+.3f}"]
            for t in THRESHOLDS:
                a, b = base[f"to_{t:.2f}"], s[f"to_{t:.2f}"]
                parts.append(f"to {t:.2f}: " + (f"x{a / b:.2f}" if a and b else f"{sec(a)} vs {sec(b)}"))
            lines.append(f"- {name}: " + ", ".join(parts))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="bench-race")
    parser.add_argument("--seconds", type=float, default=360.0, help="wall-time budget of every run")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="default")
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=["tao", "fast"])
    parser.add_argument("--peer-python", help="a Python with ultralytics installed: adds the YOLO11n run")
    parser.add_argument("--report", action="store_true", help="only print the recorded json again")
    args = parser.parse_args()
    folder = (Path(args.workdir) / args.dataset).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "learning_race.json"
    if args.report:
        data = json.loads(record.read_text())
        print(report(data["runs"], data["summary"], data["seconds"]))
        return 0
    data = make_dataset(folder, args.dataset)
    runs = {}
    for recipe in args.recipes:
        runs[recipe] = run_ours(folder, recipe, args.seconds, data["classes"])
    if args.peer_python:
        runs["yolo11n"] = run_peer(args.peer_python, folder, data["root"], data["classes"], args.seconds)
    summary = {name: summarise(points, args.seconds) for name, points in runs.items()}
    record.write_text(
        json.dumps(
            {"dataset": args.dataset, "seconds": args.seconds, "runs": runs, "summary": summary}, indent=1
        )
    )
    print(report(runs, summary, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
