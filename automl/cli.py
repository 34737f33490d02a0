"""``automl``: hyperparameter search over RT-DETR training.

automl validate [-e spec.yaml] [--action train] [key=value ...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from automl.errors import AutomlError

DEMO_SPEC = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def _validate(args: argparse.Namespace) -> int:
    from automl.spec import resolve_spec

    spec_path = args.experiment_spec or DEMO_SPEC
    spec = resolve_spec(spec_path, args.overrides, action=args.action)
    print(yaml.safe_dump(spec, sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automl", description="Hyperparameter search for RT-DETR.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    val = sub.add_parser(
        "validate", help="check a sweep's base spec (as `rtdetr validate` does) and print it"
    )
    val.add_argument(
        "-e",
        "--experiment_spec",
        "--experiment-spec",
        dest="experiment_spec",
        help="spec YAML (default: the demo preset configs/demo.yaml)",
    )
    val.add_argument("--action", default="train", help="the action the sweep runs (default train)")
    val.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    val.set_defaults(func=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AutomlError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
