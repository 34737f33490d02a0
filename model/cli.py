"""``rtdetr``: one RT-DETR action per call, the way TAO users type it.

    rtdetr train -e spec.yaml [key=value ...]     (no -e: the demo preset on the synthetic dataset)
rtdetr evaluate|inference|export|gen_trt_engine|quantize|distill -e spec.yaml [key=value ...]
rtdetr validate -e spec.yaml [--action train] [key=value ...]
rtdetr schemas [--check]
rtdetr latency -e spec.yaml [--onnx FILE | --engine FILE] [--runs N] [--rounds N] [--warmup N] [--threads N] [key=value ...]
rtdetr dataset synth --out DIR [--train N] [--val N] [--test N] [--size PX] [--classes K] [--seed S] [--dense]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from model.errors import ConfigError, ModelError

__all__ = ["build_parser", "main"]


def _default_spec() -> Path:
    """The embedded default: configs/demo.yaml, with its synthetic dataset generated when missing."""
    from model.data.synthetic import generate_dataset
    from model.paths import configs_dir

    data = Path("data/synthetic")
    if not (data / "label_map.txt").is_file():
        print(f"No spec given: generating the synthetic dataset in {data.resolve()}", flush=True)
        generate_dataset(data)
    return configs_dir() / "demo.yaml"


def _train(args: argparse.Namespace) -> int:
    from model.actions.train import run
    from model.spec import resolve_spec

    spec_path = args.experiment_spec or _default_spec()
    spec = resolve_spec("train", spec_path, args.overrides)
    argv = ["train", "-e", str(spec_path), *args.overrides]
    return run(spec, argv)


def _action(name: str):
    def run_action(args: argparse.Namespace) -> int:
        import importlib

        from model.spec import resolve_spec

        spec = resolve_spec(name, args.experiment_spec, args.overrides)
        module = importlib.import_module(f"model.actions.{name}")
        return int(module.run(spec, [name, "-e", str(args.experiment_spec), *args.overrides]) or 0)

    return run_action


def _apply_parent(args: argparse.Namespace) -> None:
    """``--parent JOB``: the inputs the spec leaves unset, as overrides (kept for torchrun re-runs)."""
    from model.parent import parent_overrides
    from model.paths import configs_dir

    if not args.parent:
        raise ModelError("--checkpoint best|latest chooses a checkpoint of --parent JOB; give --parent too")
    spec_path = args.experiment_spec or (configs_dir() / "demo.yaml" if args.command == "train" else None)
    found = parent_overrides(
        args.command, args.parent, args.checkpoint or "best", spec_path=spec_path, overrides=args.overrides
    )
    args.overrides = [*args.overrides, *found]


def _validate(args: argparse.Namespace) -> int:
    from model.spec import resolve_spec

    spec = resolve_spec(args.action, args.experiment_spec, args.overrides, check_paths=not args.no_path_check)
    if args.format == "json":
        print(json.dumps(spec, indent=2))
    else:
        print(yaml.safe_dump(spec, sort_keys=False), end="")
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from model.paths import repo_root
    from model.schema import generate

    root = Path(args.root) if args.root else repo_root()
    changed = generate(root, check=args.check)
    if args.check:
        if changed:
            print("stale or missing generated files (run `rtdetr schemas` and commit them):", file=sys.stderr)
            for name in changed:
                print(f"  {name}", file=sys.stderr)
            return 1
        print("schemas/ and references/ templates are up to date")
        return 0
    for name in changed:
        print(f"wrote {name}")
    return 0


def _latency(args: argparse.Namespace) -> int:
    from model.deploy.latency import measure_latency
    from model.spec import resolve_spec

    # the network and its export size only: the data files need not exist
    spec = resolve_spec("train", args.experiment_spec, args.overrides, check_paths=False)
    onnx = Path(args.onnx) if args.onnx else None
    engine = Path(args.engine) if args.engine else None
    if onnx is not None and engine is not None:
        raise ConfigError("rtdetr latency: give --onnx or --engine, not both (each times one file)")
    print(
        json.dumps(
            measure_latency(
                spec,
                runs=args.runs,
                warmup=args.warmup,
                threads=args.threads,
                onnx_file=onnx,
                rounds=args.rounds,
                engine_file=engine,
            )
        )
    )
    return 0


def _dataset_synth(args: argparse.Namespace) -> int:
    from model.data.synthetic import generate_dataset

    summary = generate_dataset(
        args.out,
        train=args.train,
        val=args.val,
        test=args.test,
        size=args.size,
        classes=args.classes,
        seed=args.seed,
        dense=args.dense,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtdetr", description="RT-DETR actions with TAO-compatible specs.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    actions = (
        ("train", _train, "train RT-DETR (torchrun when train.num_gpus/num_nodes > 1)"),
        ("evaluate", _action("evaluate"), "COCO mAP of a checkpoint on dataset.test_data_sources"),
        (
            "inference",
            _action("inference"),
            "detections on dataset.infer_data_sources: images, KITTI, COCO json",
        ),
        ("export", _action("export"), "ONNX model of a checkpoint (export.input_width x input_height)"),
        ("gen_trt_engine", _action("gen_trt_engine"), "TensorRT engine from the exported ONNX model"),
        ("quantize", _action("quantize"), "post-training quantization of a checkpoint (torchao, modelopt)"),
        (
            "distill",
            _action("distill"),
            "train a student with a frozen teacher's features (distill.bindings)",
        ),
    )
    for name, func, text in actions:
        act = sub.add_parser(name, help=text)
        act.add_argument(
            "-e",
            "--experiment_spec",
            "--experiment-spec",
            dest="experiment_spec",
            required=name != "train",
            help="spec YAML (train: default the demo preset)",
        )
        act.add_argument(
            "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.num_epochs=5"
        )
        act.add_argument(
            "--parent",
            metavar="JOB",
            help="take the input model from an earlier job: a train results folder or an `automl run` sweep "
            "folder (checkpoint), an export or gen_trt_engine folder (ONNX model, engine)",
        )
        act.add_argument(
            "--checkpoint",
            choices=("best", "latest"),
            help="with --parent: the best validated epoch's checkpoint (default) or the latest one",
        )
        act.set_defaults(func=func)

    val = sub.add_parser("validate", help="print the resolved spec for an action, or every problem in it")
    val.add_argument(
        "-e", "--experiment_spec", "--experiment-spec", dest="experiment_spec", help="spec YAML file"
    )
    val.add_argument(
        "--action", default="train", help="the action whose template and inputs apply (default train)"
    )
    val.add_argument("--format", choices=("yaml", "json"), default="yaml")
    val.add_argument("--no-path-check", action="store_true", help="do not require the input files to exist")
    val.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.num_epochs=5"
    )
    val.set_defaults(func=_validate)

    sch = sub.add_parser("schemas", help="regenerate schemas/*.schema.json, manifest and spec templates")
    sch.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    sch.add_argument("--root", help="project folder to write into (default: this checkout)")
    sch.set_defaults(func=_schemas)

    lat = sub.add_parser(
        "latency",
        help="ONNX Runtime latency (ms, batch 1, eval_spatial_size) of the spec's untrained network "
        "(or of an exported --onnx file), as JSON",
    )
    lat.add_argument(
        "--onnx", help="time this exported model (rtdetr export's file) instead of the untrained network"
    )
    lat.add_argument(
        "--engine", help="time this TensorRT engine (rtdetr gen_trt_engine's file) on the GPU instead"
    )
    lat.add_argument("-e", "--experiment_spec", "--experiment-spec", dest="experiment_spec", required=True)
    lat.add_argument("--runs", type=int, default=20, help="timed calls; the median is reported (default 20)")
    lat.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of --runs calls; the quietest round is reported (default 3)",
    )
    lat.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    lat.add_argument(
        "--threads", type=int, help="ONNX Runtime intra-op threads (default OMP_NUM_THREADS or torch's)"
    )
    lat.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. model.dec_layers=3"
    )
    lat.set_defaults(func=_latency)

    data = sub.add_parser("dataset", help="dataset tools")
    data_sub = data.add_subparsers(dest="dataset_command", required=True, metavar="tool")
    synth = data_sub.add_parser("synth", help="write the synthetic shapes dataset (COCO format)")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--train", type=int, default=400, help="train images (default 400)")
    synth.add_argument("--val", type=int, default=100, help="validation images (default 100)")
    synth.add_argument("--test", type=int, default=100, help="test images (default 100)")
    synth.add_argument(
        "--size", type=int, default=128, help="image side in pixels, a multiple of 32 (default 128)"
    )
    synth.add_argument("--classes", type=int, default=3, help="number of shape classes (default 3)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument(
        "--dense",
        action="store_true",
        help="harder layout: 4 to 12 objects per image, 7%% to 20%% of the side (default: 0 to 4, 15%% to 45%%)",
    )
    synth.set_defaults(func=_dataset_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "parent", None) or getattr(args, "checkpoint", None):
            _apply_parent(args)
        return int(args.func(args) or 0)
    except ModelError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
