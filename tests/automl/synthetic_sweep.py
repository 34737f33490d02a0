"""A synthetic sweep folder (summary.json, trial folders, TAO status.json lines, small checkpoints)
and a driver that calls a tracker in the order ``Sweep`` does. Shared by the tracking tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from automl.launch.status_tail import epoch_report
from automl.results.summary import write_json_atomic
from automl.tracking.protocol import SweepTracker

EPOCHS = 3
# number -> (state, params, val_mAP50 per epoch; the FAIL trial stops after one epoch)
TRIALS: dict[int, tuple[str, dict[str, Any], list[float]]] = {
    0: ("COMPLETE", {"train.optim.lr": 1e-4, "model.backbone": "resnet_18"}, [0.20, 0.35, 0.41]),
    1: ("COMPLETE", {"train.optim.lr": 3e-4, "model.backbone": "resnet_34"}, [0.25, 0.47, 0.52]),
    2: ("PRUNED", {"train.optim.lr": 1e-3, "model.backbone": "resnet_18"}, [0.05, 0.09]),
    3: ("FAIL", {"train.optim.lr": 2e-3, "model.backbone": "resnet_34"}, [0.01]),
}
BEST = 1


def base_summary(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "status": "RUNNING",
        "policy": {"decision": "search", "reason": "--policy auto", "message": "searching"},
        "backend": "optuna",
        "algorithm": {"sampler": "tpe", "fidelity": "asha", "name": "asha"},
        "settings": {"max_recommendations": 4, "metric": "val_mAP50", "early_stop": {"patience": 2}},
        "config": {},
        "space": {
            "params": [
                {"name": "train.optim.lr", "kind": "float", "low": 1e-5, "high": 1e-2, "log": True},
                {"name": "model.backbone", "kind": "categorical", "choices": ["resnet_18", "resnet_34"]},
            ],
            "excluded": [{"name": "train.optim.momentum", "reason": "unused by AdamW"}],
        },
        "max_epochs": EPOCHS,
        "trials": [],
        "best": None,
        "pipeline": {},
    }


def status_line(epoch: int, value: float) -> dict[str, Any]:
    return {
        "date": "11/25/2026",
        "time": "10:00:00",
        "status": "RUNNING",
        "message": "Train metrics generated.",
        "epoch": epoch,
        "max_epoch": EPOCHS,
        "time_per_epoch": "0:00:07",
        "kpi": {
            "train_loss": f"{3.0 - value:.4f}",
            "lr": "0.0001",
            "val_loss": f"{2.0 - value:.4f}",
            "val_mAP": f"{value / 2:.4f}",
            "val_mAP50": f"{value:.4f}",
        },
    }


def trial_folder(sweep: Path, number: int) -> Path:
    return sweep / "trials" / f"{number:04d}"


def write_trial_files(sweep: Path, number: int) -> list[dict[str, Any]]:
    """Writes the trial's folder as a finished training leaves it; returns its status lines."""
    state, params, values = TRIALS[number]
    folder = trial_folder(sweep, number)
    (folder / "train").mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(
        "train:\n  num_epochs: 3\n" + "".join(f"# {k}: {v}\n" for k, v in params.items()), encoding="utf-8"
    )
    (folder / "trial.log").write_text("".join(f"log line {i}\n" for i in range(300)), encoding="utf-8")
    lines = [{"status": "STARTED", "message": "Starting training"}]
    lines += [status_line(epoch, value) for epoch, value in enumerate(values)]
    lines.append({"status": "FAILURE" if state == "FAIL" else "SUCCESS", "message": "done"})
    with open(folder / "train" / "status.json", "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
    for epoch in range(len(values)):
        (folder / "train" / f"model_epoch_{epoch:03d}.pth").write_bytes(bytes(64) + bytes([epoch]))
    return lines


def trial_entry(sweep: Path, number: int) -> dict[str, Any]:
    state, params, values = TRIALS[number]
    best_epoch = max(range(len(values)), key=lambda e: values[e])
    folder = trial_folder(sweep, number)
    return {
        "number": number,
        "state": state,
        "params": params,
        "value": None if state == "FAIL" else values[best_epoch],
        "best_epoch": best_epoch,
        "last_epoch": len(values) - 1,
        "checkpoint": str(folder / "train" / f"model_epoch_{best_epoch:03d}.pth"),
        "seconds": 21.0,
        "failure_class": "crash" if state == "FAIL" else None,
        "error": "exit code 1: CUDA error" if state == "FAIL" else None,
        "folder": str(folder),
        "log": str(folder / "trial.log"),
    }


def final_summary(sweep: Path, summary: dict[str, Any]) -> dict[str, Any]:
    best = trial_entry(sweep, BEST)
    summary["status"] = "FINISHED"
    summary["best"] = {
        "trial": BEST,
        "params": best["params"],
        "value": best["value"],
        "metric": "val_mAP50",
        "best_epoch": best["best_epoch"],
        "checkpoint": best["checkpoint"],
        "folder": best["folder"],
    }
    return summary


def run_sweep(
    tracker: SweepTracker, sweep: Path, stop_after: tuple[int, int] | None = None, hook: Any = None
) -> dict:
    """Drives ``tracker`` as the sweep does, writing summary.json as it goes.

    ``hook()`` is called once, when trial ``stop_after[0]`` has reported epoch ``stop_after[1]``.
    """
    sweep.mkdir(parents=True, exist_ok=True)
    summary = base_summary(sweep.name)
    write_json_atomic(sweep / "summary.json", summary)
    tracker.start_sweep(summary)
    for number in TRIALS:
        entry = trial_entry(sweep, number)
        summary["trials"].append({**entry, "state": "RUNNING"})
        write_json_atomic(sweep / "summary.json", summary)
        tracker.trial_started(number, entry["params"], Path(entry["folder"]))
        for line in write_trial_files(sweep, number):
            report = epoch_report(line, "val_mAP50")
            if report is not None:
                tracker.trial_epoch(number, report.epoch, report.metrics)
                if hook is not None and stop_after == (number, report.epoch):
                    hook()
        summary["trials"][-1] = entry
        write_json_atomic(sweep / "summary.json", summary)
        tracker.trial_finished(entry)
    final_summary(sweep, summary)
    write_json_atomic(sweep / "summary.json", summary)
    tracker.finish_sweep(summary)
    return summary
