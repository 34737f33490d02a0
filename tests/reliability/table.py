"""The row type and helpers of the reliability table (test_bad_inputs.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

RTDETR = "model.cli"
AUTOML = "automl.cli"


@dataclass(frozen=True)
class Row:
    id: str
    prog: str  # RTDETR or AUTOML
    argv: list[str]  # {spec}, {tmp} and {data} are filled in
    code: int
    fragments: list[str]  # {tmp} and {data} are filled in
    change: dict[str, Any] = field(default_factory=dict)  # merged into the valid spec at {spec}
    text: str | None = None  # the spec file's text instead of a valid spec
    setup: Callable[[Path], None] | None = None  # on tmp
    absent: list[str] = field(default_factory=lambda: ["out"])  # from tmp: results_dir is tmp/out
    xfail: str | None = None


def _merge(base: dict, change: dict) -> dict:
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _file(name: str, content: str = "hello\n") -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_text(content)


def _folder(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).mkdir()


TRAIN = ["train", "-e", "{spec}"]
RUN = ["run", "-e", "{spec}", "--no-track", "--no-pipeline", "--results-dir", "{tmp}/r", "--name", "s"]
SWEEP = ["r/s", "out"]  # a refused `automl run` writes no sweep folder and no trial results
NOPE = "/nope/model.pth"
LRR = "train.optim.lrr: unknown key; did you mean train.optim.lr?"


def spec_row(id: str, change: dict, fragments: list[str], *overrides: str, action: str = "train") -> Row:
    return Row(id, RTDETR, [action, "-e", "{spec}", *overrides], 2, fragments, change=change)


def text_row(id: str, text: str, fragments: list[str]) -> Row:
    return Row(id, RTDETR, TRAIN, 2, ["{tmp}/spec.yaml", *fragments], text=text)


def nan_row(id: str, override: str, fragments: list[str]) -> Row:
    return Row(id, RTDETR, [*TRAIN, override], 2, fragments)


def setting_row(id: str, setting: str, fragments: list[str]) -> Row:
    return Row(id, AUTOML, [*RUN, "--setting", setting], 2, fragments, absent=SWEEP)


def param_row(id: str, param: str, fragments: list[str]) -> Row:
    return Row(id, AUTOML, [*RUN, "--param", param], 2, fragments, absent=SWEEP)


def _fill(value: Any, **names: Path) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, **names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, **names) for v in value]
    return value


def _param(row: Row) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=row.xfail)] if row.xfail else []
    return pytest.param(row, id=row.id, marks=marks)
