"""Deployed-model latency per image at 640x640: PyTorch eager fp32, eager under bf16 autocast, ONNX
Runtime fp32 on the CPU, and TensorRT FP16 when a GPU and TensorRT are available.

Usage: python bench/deploy_speed.py [--models r18 r50] [--batches 1 4] [--size 640] [--iters 3]
                                    [--warmup 1] [--threads N] [--workdir DIR]

Every row runs the network as ``rtdetr evaluate`` / ``inference`` run it: the PyTorch rows use the
model in deploy mode (RepVGG fused) under ``torch.inference_mode`` with ``channels_last``; the ONNX
Runtime row runs the file ``rtdetr export`` writes (opset 17, dynamic batch, RepVGG fused) with
``--threads`` intra-op threads (default: torch's); the TensorRT row builds an FP16 engine with
``rtdetr gen_trt_engine`` (batch profile 1..max batch) and runs it with ``TrtEngineRunner``.
Random weights and images (the timing does not depend on them). Median and fastest of ``--iters``
after ``--warmup`` calls. Prints a markdown table (seconds per image = batch time / batch).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.deploy.onnx_export import export_onnx, onnxruntime_session, spec_for_size  # noqa: E402
from model.network.rtdetr import build_model  # noqa: E402

CONFIGS = ROOT / "configs"


def _time(fn: Callable[[], object], iters: int, warmup: int) -> tuple[float, float]:
    """(median, fastest) seconds of ``iters`` calls after ``warmup`` calls; on a shared machine the
    fastest call is the one least disturbed by other processes."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def _spec(name: str, size: int) -> dict:
    spec = yaml.safe_load((CONFIGS / f"rtdetr_{name}.yaml").read_text())
    return spec_for_size(spec, size, size)


def _tensorrt_engine(onnx_file: Path, max_batch: int, workdir: Path, spec_file: Path) -> Path | None:
    """An FP16 engine from ``rtdetr gen_trt_engine``, or None (with the reason printed) when it fails."""
    engine = onnx_file.with_suffix(".fp16.engine")
    cmd = [
        sys.executable,
        "-m",
        "model.cli",
        "gen_trt_engine",
        "-e",
        str(spec_file),
        f"gen_trt_engine.onnx_file={onnx_file}",
        f"gen_trt_engine.trt_engine={engine}",
        f"gen_trt_engine.results_dir={workdir / 'gen_trt_engine'}",
        "gen_trt_engine.tensorrt.data_type=FP16",
        "gen_trt_engine.tensorrt.min_batch_size=1",
        f"gen_trt_engine.tensorrt.opt_batch_size={max_batch}",
        f"gen_trt_engine.tensorrt.max_batch_size={max_batch}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not engine.is_file():
        print(f"TensorRT engine not built: {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return engine


def _bench_batch(
    name: str,
    batch: int,
    model: torch.nn.Module,
    session: Any,
    engine_runner: Any,
    args: argparse.Namespace,
) -> list[tuple[str, str, int, tuple[float, float]]]:
    rows = []
    images = torch.rand(batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fp32 = _time(lambda: model(images), args.iters, args.warmup)
        rows.append((name, "PyTorch eager fp32 (deploy, channels_last)", batch, fp32))

        def bf16() -> object:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(images)

        rows.append((name, "PyTorch eager bf16 autocast", batch, _time(bf16, args.iters, args.warmup)))
    feed = {"images": images.contiguous().numpy()}
    ort_time = _time(lambda: session.run(None, feed), args.iters, args.warmup)
    rows.append((name, f"ONNX Runtime fp32 CPU ({session.get_providers()[0]})", batch, ort_time))
    if engine_runner is not None:
        gpu_images = images.contiguous().cuda()

        def trt() -> object:
            out = engine_runner(gpu_images)
            torch.cuda.synchronize()
            return out

        rows.append((name, "TensorRT FP16", batch, _time(trt, args.iters, args.warmup)))
    return rows


def bench_model(name: str, args: argparse.Namespace) -> list[tuple[str, str, int, tuple[float, float]]]:
    size, rows = args.size, []
    spec = _spec(name, size)
    torch.manual_seed(0)
    model = build_model(spec).deploy().to(memory_format=torch.channels_last)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    onnx_file = export_onnx(build_model(spec), workdir / f"{name}_{size}.onnx", height=size, width=size)
    session = onnxruntime_session(onnx_file, threads=args.threads or torch.get_num_threads())
    engine_runner = None
    if torch.cuda.is_available() and not args.no_tensorrt:
        spec_file = workdir / f"{name}_spec.yaml"
        spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        engine = _tensorrt_engine(onnx_file, max(args.batches), workdir, spec_file)
        if engine is not None:
            from model.deploy.trt_engine_runner import TrtEngineRunner

            engine_runner = TrtEngineRunner(engine, device="cuda")
    for batch in args.batches:
        rows += _bench_batch(name, batch, model, session, engine_runner, args)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["r18", "r50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: torch's)")
    parser.add_argument("--workdir", default="bench-deploy", help="folder for the exported files")
    parser.add_argument("--no-tensorrt", action="store_true", help="skip the TensorRT row on a GPU machine")
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}",
        flush=True,
    )
    print(
        "| model | runtime | batch | s / batch (median) | s / image (median) | s / image (fastest) |\n"
        "|---|---|---:|---:|---:|---:|",
        flush=True,
    )
    for name in args.models:
        for model, runtime, batch, (median, fastest) in bench_model(name, args):
            print(
                f"| {model.upper()} | {runtime} | {batch} | {median:.3f} | {median / batch:.3f} | "
                f"{fastest / batch:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
