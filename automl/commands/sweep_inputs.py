"""What `automl run`, `automl worker` and `automl space` build from the command line: the spec
(or the embedded default), the settings, the parameter ranges, the search space, the concurrency."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from automl.errors import AutomlError, SettingError
from automl.project_files import demo_spec_file
from automl.settings.action_profiles import quantize_space, setting_defaults
from automl.settings.tao_settings import AutomlSettings, parse_setting_args
from automl.space.architecture import INPUT_SIZE, architecture_ranges, input_size_param, with_input_size
from automl.space.build import build_space
from automl.space.params import SearchSpace
from automl.space.schema_rows import load_schema
from automl.spec import get_dotted, rtdetr_command

__all__ = ["concurrency", "demo_spec", "make_space", "param_ranges", "settings_from_args", "sweep_epochs"]

DEMO_DATA = Path("data/synthetic")


def demo_spec() -> Path:
    """The embedded default; its synthetic dataset is generated in ./data/synthetic when missing."""
    if not (DEMO_DATA / "label_map.txt").is_file():
        print(f"No spec given: generating the synthetic dataset in {DEMO_DATA.resolve()}", flush=True)
        proc = subprocess.run(
            [*rtdetr_command(), "dataset", "synth", "--out", str(DEMO_DATA)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise AutomlError(f"could not generate the synthetic dataset: {proc.stderr.strip()[-1000:]}")
    return demo_spec_file()


def settings_from_args(args: Any) -> dict[str, Any]:
    pairs = parse_setting_args(args.setting or [])
    flags = {
        "automl_algorithm": args.algorithm,
        "automl_max_recommendations": args.trials,
        "automl_max_epochs": args.max_epochs,
        "automl_max_concurrent": args.concurrency,
        "time_budget": getattr(args, "time_budget", None),
        "max_latency_ms": getattr(args, "max_latency_ms", None),
        "objectives": getattr(args, "objectives", None),
        "seed": args.seed,
    }
    pairs.update({k: v for k, v in flags.items() if v is not None})
    if args.backend:
        pairs["backend"] = args.backend
    # the action's defaults: its metric (quantize: test_mAP50), no early stopping without epochs
    return setting_defaults(pairs, getattr(args, "action", None))


def param_ranges(items: Sequence[str]) -> dict[str, str]:
    ranges: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise SettingError(f"--param {item!r}: expected name=range, e.g. train.optim.lr=1e-5:1e-3:log")
        name, text = item.split("=", 1)
        ranges[name.strip()] = text.strip()
    return ranges


def make_space(
    schema_path: Path,
    spec: dict[str, Any],
    settings: AutomlSettings,
    ranges: dict[str, str],
    action: str = "train",
) -> SearchSpace:
    schema = load_schema(schema_path)
    if action == "quantize":  # one categorical over the allowed backend/mode/algorithm/dtype rows
        hyper = list(settings.hyperparameters) if settings.hyperparameters else None
        return quantize_space(
            schema, spec, hyperparameters=hyper, user_ranges={**settings.custom_param_ranges, **ranges}
        )
    user = {**settings.custom_param_ranges, **ranges}
    size_range = user.pop(INPUT_SIZE, None)
    hyper = [n for n in settings.hyperparameters or () if n != INPUT_SIZE]
    architecture = settings.measures_latency and action == "train" and not settings.hyperparameters
    space = build_space(
        schema,
        spec,
        hyperparameters=hyper or None,
        override_disabled=settings.override_disabled_params,
        user_ranges=user,
        also=architecture_ranges(spec) if architecture else None,
    )
    if architecture or size_range is not None or INPUT_SIZE in (settings.hyperparameters or ()):
        queries = space.get("model.num_queries")
        most = int(queries.high or 0) if queries is not None and queries.kind == "int" else None
        if queries is not None and queries.kind == "categorical":
            most = int(max(queries.choices))
        space = with_input_size(space, input_size_param(spec, size_range, most))
    if not space.params:
        raise SettingError(
            "the search space is empty: every requested parameter is excluded or disabled; see `automl space` "
            "and pass --param name=low:high or --setting automl_hyperparameters=[...]"
        )
    return space


def concurrency(settings: AutomlSettings, spec: dict[str, Any], gpus: list[int]) -> int:
    if settings.max_concurrent:
        return int(settings.max_concurrent)
    per_trial = int(get_dotted(spec, "train.num_gpus", 1) or 1)
    return max(1, len(gpus) // per_trial) if gpus else 1


def sweep_epochs(settings: AutomlSettings, spec: dict[str, Any]) -> int:
    """The epochs a trial trains: ``automl_max_epochs`` (default: the spec's ``train.num_epochs``)
    times ``epoch_multiplier``."""
    epochs = settings.max_epochs or get_dotted(spec, "train.num_epochs", 1)
    return int(epochs) * int(settings.epoch_multiplier)
