"""CPU speed of the RT-DETR network: forward latency and one training step, R18 and R50.

Usage: python bench/model_speed.py [--models r18 r50] [--batch 2] [--size 640] [--iters 3]
Prints a markdown table. Settings compared for inference: plain fp32, ``channels_last``
memory format, and RepVGG re-parameterisation (``model.deploy()``), all under
``torch.inference_mode``. Results belong in bench/README.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from model import build_model
from model.network.rtdetr import build_criterion

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _time(fn: Callable[[], object], iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _targets(batch: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(batch):
        n = 8
        centres = torch.rand(n, 2, generator=gen) * 0.6 + 0.2
        sizes = torch.rand(n, 2, generator=gen) * 0.2 + 0.05
        out.append(
            {"labels": torch.randint(0, 80, (n,), generator=gen), "boxes": torch.cat([centres, sizes], 1)}
        )
    return out


def bench_model(name: str, batch: int, size: int, iters: int, warmup: int) -> list[tuple[str, str, float]]:
    spec = yaml.safe_load((CONFIGS / f"rtdetr_{name}.yaml").read_text())
    spec.setdefault("dataset", {}).setdefault("augmentation", {})["eval_spatial_size"] = [size, size]
    images = torch.rand(batch, 3, size, size)
    rows = []

    model = build_model(spec).eval()
    with torch.inference_mode():
        rows.append((name, "forward fp32", _time(lambda: model(images), iters, warmup)))
        model_cl = model.to(memory_format=torch.channels_last)
        images_cl = images.contiguous(memory_format=torch.channels_last)
        rows.append((name, "forward fp32 channels_last", _time(lambda: model_cl(images_cl), iters, warmup)))
        model_cl.deploy()
        rows.append(
            (name, "forward deploy() + channels_last", _time(lambda: model_cl(images_cl), iters, warmup))
        )

    model = build_model(spec).train()
    criterion = build_criterion(spec)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    targets = _targets(batch)

    def step() -> None:
        losses = criterion(model(images, targets), targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()

    rows.append((name, "train step (fwd+loss+bwd+AdamW)", _time(step, iters, warmup)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["r18", "r50"], choices=["r18", "r34", "r50m", "r50", "r101"]
    )
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} threads, batch {args.batch}, {args.size}x{args.size}, float32, median of {args.iters}\n"
    )
    print("| model | workload | s / batch | ms / image |")
    print("|---|---|---|---|")
    for name in args.models:
        for model_name, workload, seconds in bench_model(
            name, args.batch, args.size, args.iters, args.warmup
        ):
            print(
                f"| {model_name} | {workload} | {seconds:.3f} | {1000 * seconds / args.batch:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
