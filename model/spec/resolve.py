"""Resolve a spec: action template defaults <- user YAML <- dotted overrides <- TAO shorthand keys,
then validate it all at once (schema, cross-field rules, input paths, NaN anywhere)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from model.errors import SpecError
from model.spec.messages import nan_problems, schema_problems
from model.spec.overrides import apply_overrides, deep_merge, set_dotted, split_key
from model.spec.rules import _expand, cross_field_problems, is_url, path_problems
from model.spec.skill_info import action_inputs, shorthand_keys
from model.spec.tao_schema import all_dotted_keys, to_json_schema
from model.spec.yaml_io import load_spec_file

__all__ = [
    "RUN_ARGUMENTS",
    "absolutize_inputs",
    "actions",
    "experiment_json_schema",
    "resolve_spec",
    "template",
]

RUN_ARGUMENTS = ("automl_policy",)


@lru_cache(maxsize=1)
def experiment_json_schema() -> tuple[dict[str, Any], list[str]]:
    """JSON Schema of a whole experiment spec (every section of every action) and its dotted keys."""
    from model.schema import ACTIONS, build_schema

    schema = to_json_schema([build_schema(a) for a in ACTIONS])
    return schema, all_dotted_keys(schema)


def actions() -> tuple[str, ...]:
    from model.schema import ACTIONS

    return tuple(ACTIONS)


def template(action: str) -> dict[str, Any]:
    from model.schema import spec_template

    return spec_template(action)


def _run_argument_problems(user: Mapping[str, Any]) -> list[str]:
    problems = []
    for section, body in [("", user), *[(k, v) for k, v in user.items() if isinstance(v, Mapping)]]:
        for name in RUN_ARGUMENTS:
            if name in body:
                key = f"{section}.{name}" if section else name
                problems.append(
                    f"{key}: automl_policy is a run argument, not a spec key; remove it from the spec and "
                    f'pass it to the run instead (automl run --policy auto|off, or --request "...")'
                )
    return problems


def _strip_run_arguments(user: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in user.items() if k not in RUN_ARGUMENTS}
    for key, value in clean.items():
        if isinstance(value, dict):
            clean[key] = {k: v for k, v in value.items() if k not in RUN_ARGUMENTS}
    return clean


def absolutize_inputs(spec: dict[str, Any], action: str, cwd: Path) -> dict[str, Any]:
    """Rewrite relative input paths (and results_dir) as absolute, so the resolved spec runs anywhere."""
    keys = [*action_inputs(action), "results_dir"]
    for key in keys:
        for concrete, value in _expand(spec, key):
            if isinstance(value, str) and value and value != "???" and not is_url(value):
                if not Path(value).is_absolute():
                    set_dotted(spec, split_key(concrete), str((cwd / value).resolve()))
    return spec


def _seconds_as_text(spec: dict[str, Any]) -> None:
    """``train.time_budget: 300`` (a YAML number) means seconds; the key is a string (``5m``)."""
    train = spec.get("train")
    if isinstance(train, dict):
        value = train.get("time_budget")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            train["time_budget"] = f"{value:g}"


def resolve_spec(
    action: str,
    spec_path: str | Path | None = None,
    overrides: Iterable[str] = (),
    *,
    check_paths: bool = True,
    cwd: str | Path | None = None,
    user_spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fully resolved, validated spec for ``action``; raises SpecError listing every problem."""
    known = actions()
    if action not in known:
        raise SpecError(f"--action: unknown action {action!r}; choose one of {', '.join(known)}")
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    source = str(spec_path) if spec_path is not None else None
    user: dict[str, Any] = dict(user_spec or {})
    if spec_path is not None:
        user = deep_merge(user, load_spec_file(spec_path))
    problems = _run_argument_problems(user)
    merged = deep_merge(template(action), _strip_run_arguments(user))
    merged, override_problems = apply_overrides(merged, overrides, shorthand_keys())
    problems += override_problems
    _seconds_as_text(merged)
    schema, keys = experiment_json_schema()
    problems += schema_problems(merged, schema, keys)
    problems += cross_field_problems(merged, action)
    if check_paths:
        problems += path_problems(merged, action, action_inputs(action), cwd)
    problems += nan_problems(merged, schema, problems)
    if problems:
        raise SpecError(problems, source=source)
    return absolutize_inputs(merged, action, cwd) if check_paths else merged
