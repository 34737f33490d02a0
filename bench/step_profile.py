"""Where a training step's time goes: data, forward, matcher, loss, backward, optimiser.

Usage: python bench/step_profile.py [-e configs/demo.yaml] [--workdir DIR] [--steps 30] [key=value ...]
Builds the training loader, model, criterion and optimiser of the spec exactly as `rtdetr train`
does (paths relative to DIR, where the synthetic dataset is generated if missing), runs --steps
steps after 3 warm-up steps, and prints the mean milliseconds per step of each phase as a markdown
table. The matcher is timed inside the criterion (every Hungarian matching of the step), so "loss"
is the criterion without it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class TimedMatcher:
    """Wraps the criterion's matcher and adds its wall time to ``seconds``."""

    def __init__(self, matcher):
        self.matcher = matcher
        self.seconds = 0.0

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.matcher(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-e", "--spec", default=str(ROOT / "configs/demo.yaml"))
    parser.add_argument("--workdir", default="bench-demo")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "data/synthetic/label_map.txt").is_file():
        cli = [sys.executable, "-m", "model.cli", "dataset", "synth", "--out", "data/synthetic"]
        subprocess.run(cli, cwd=work, check=True)
    os.chdir(work)

    import torch

    from model.data import build_dataloader
    from model.engine.optim import build_optimizer
    from model.network.rtdetr import build_criterion, build_model
    from model.spec.resolve import resolve_spec

    spec = resolve_spec("train", args.spec, args.overrides, cwd=work)
    torch.manual_seed(0)
    loader = build_dataloader(spec, "train", seed=0)
    model = build_model(spec).train()
    criterion = build_criterion(spec)
    timed = TimedMatcher(criterion.matcher)
    del criterion.matcher  # a plain attribute from here on (nn.Module refuses a non-module child)
    object.__setattr__(criterion, "matcher", timed)
    optimizer = build_optimizer(model, spec["train"]["optim"])
    clip = float(spec["train"]["clip_grad_norm"] or 0.0)
    phases = dict.fromkeys(("data", "forward", "matcher", "loss", "backward", "optimiser"), 0.0)
    done, warmup = 0, 3
    batches = iter(loader)
    while done < args.steps + warmup:
        started = time.perf_counter()
        try:
            images, targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            continue
        t_data = time.perf_counter()
        outputs = model(images, targets)
        t_forward = time.perf_counter()
        timed.seconds = 0.0
        loss = sum(criterion(outputs, targets).values())
        t_loss = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t_backward = time.perf_counter()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        t_end = time.perf_counter()
        done += 1
        if done <= warmup:
            continue
        phases["data"] += t_data - started
        phases["forward"] += t_forward - t_data
        phases["matcher"] += timed.seconds
        phases["loss"] += t_loss - t_forward - timed.seconds
        phases["backward"] += t_backward - t_loss
        phases["optimiser"] += t_end - t_backward
    total = sum(phases.values())
    size = spec["dataset"]["augmentation"]["train_spatial_size"]
    print(
        f"{Path(args.spec).name} {' '.join(args.overrides)}: batch {spec['dataset']['batch_size']}, "
        f"{size[0]}x{size[1]}, {args.steps} steps, torch threads {torch.get_num_threads()}"
    )
    print("| phase | ms / step | share |\n|---|---:|---:|")
    for name, seconds in phases.items():
        print(f"| {name} | {1000 * seconds / args.steps:.1f} | {100 * seconds / total:.0f}% |")
    print(f"| total | {1000 * total / args.steps:.1f} | 100% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
