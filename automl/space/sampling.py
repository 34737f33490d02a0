"""Sampling a :class:`~automl.space.params.SearchSpace` through an Optuna-like trial (define-by-run).

Every parameter is drawn from one fixed Optuna distribution (see ``automl.space.params`` for the
encodings); the spec values are returned by :func:`sample_params` and, for encoded parameters,
recorded on the trial with ``trial.set_user_attr(name, value)``. :func:`encode_params` is the
inverse: spec values -> the Optuna parameters that give them, for ``study.enqueue_trial`` (a
baseline trial at the spec's defaults, or a known good configuration).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from itertools import accumulate
from typing import Any, Protocol

from automl.errors import SettingError
from automl.space.params import SearchParam, SearchSpace

__all__ = ["encode_params", "sample_params", "unit_position"]


class TrialLike(Protocol):
    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def set_user_attr(self, key: str, value: Any) -> None: ...


def sample_params(space: SearchSpace, trial: TrialLike) -> dict[str, Any]:
    """Draw one configuration: dotted spec key -> value, every constraint of the space holding."""
    values: dict[str, Any] = {}
    for param in space.params:
        value = _sample_one(param, trial, values)
        if param.encoding != "direct":
            trial.set_user_attr(param.name, value)
        values[param.name] = value
    return values


def _sample_one(param: SearchParam, trial: TrialLike, values: Mapping[str, Any]) -> Any:
    name = param.optuna_name
    if param.encoding == "fraction":
        u = trial.suggest_float(name, 0.0, 1.0)
        if param.kind == "categorical":
            return _pick(*param.choices_given(values[param.parent_name]), u)
        return _from_unit(param, u, *param.bounds_given(values[param.parent_name]))
    if param.encoding == "weights":
        return _pick(param.choices, param.weights, trial.suggest_float(name, 0.0, 1.0))
    if param.encoding == "power":
        grid = param.grid()
        exponent = trial.suggest_int(name, _exponent(param, grid[0]), _exponent(param, grid[-1]))
        return int((param.base or 2) ** exponent)
    if param.encoding == "log1m":
        low, high = param.span
        return 1.0 - trial.suggest_float(name, 1.0 - high, 1.0 - low, log=True)
    if param.kind == "categorical":
        return trial.suggest_categorical(name, list(param.choices))
    if param.kind == "int":
        if param.scale == "multiple":
            grid = param.grid()
            return trial.suggest_int(name, grid[0], grid[-1], step=param.base or 1)
        low, high = param.span
        return trial.suggest_int(name, int(low), int(high), log=param.scale == "log")
    return trial.suggest_float(name, *param.span, log=param.scale == "log")


def _pick(choices: tuple[Any, ...], weights: tuple[float, ...], u: float) -> Any:
    """The choice whose slice of [0, 1] (cumulative weights; equal slices without weights) holds ``u``."""
    weights = weights or (1.0 / len(choices),) * len(choices)
    index = bisect.bisect_right(list(accumulate(weights)), u)
    return choices[min(index, len(choices) - 1)]


def _midpoint(choices: tuple[Any, ...], weights: tuple[float, ...], value: Any) -> float:
    weights = weights or (1.0 / len(choices),) * len(choices)
    index = choices.index(value)
    return sum(weights[:index]) + weights[index] / 2


def _from_unit(param: SearchParam, u: float, low: float, high: float) -> Any:
    """Map ``u`` in [0, 1] into [low, high] on the param's scale and grid."""
    u = min(max(u, 0.0), 1.0)
    if param.kind == "int" and param.scale in ("power", "multiple"):
        grid = param.grid(low, high)
        return grid[min(int(u * len(grid)), len(grid) - 1)]
    if param.kind == "int":
        lo, hi = math.ceil(low), math.floor(high)
        if param.scale == "log" and lo > 0:
            return min(hi, max(lo, round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))))
        return min(hi, lo + int(u * (hi - lo + 1)))
    if param.scale == "log" and low > 0:
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    elif param.scale == "log1m" and high < 1.0:
        c_lo, c_hi = 1.0 - high, 1.0 - low
        value = 1.0 - math.exp(math.log(c_hi) + u * (math.log(c_lo) - math.log(c_hi)))
    else:
        value = low + u * (high - low)
    return min(high, max(low, value))


def _to_unit(param: SearchParam, value: float, low: float, high: float) -> float:
    if param.kind == "int" and param.scale in ("power", "multiple"):
        grid = param.grid(low, high)
        return (grid.index(int(value)) + 0.5) / len(grid)
    if param.kind == "int":
        lo, hi = math.ceil(low), math.floor(high)
        if param.scale == "log" and lo > 0 and hi > lo:
            return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (value - lo + 0.5) / (hi - lo + 1)
    if high <= low:
        return 0.0
    if param.scale == "log" and low > 0:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    if param.scale == "log1m" and high < 1.0:
        return (math.log(1.0 - value) - math.log(1.0 - low)) / (math.log(1.0 - high) - math.log(1.0 - low))
    return (value - low) / (high - low)


def unit_position(param: SearchParam, value: Any) -> float:
    """Where a numeric ``value`` lies in [0, 1] on the param's own scale and grid (log, power,
    multiple...): the distance that :mod:`automl.replay` measures between configurations."""
    low, high = param.span
    return min(1.0, max(0.0, _to_unit(param, float(value), low, high)))


def encode_params(space: SearchSpace, values: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna parameters (``param.optuna_name`` -> value) that make :func:`sample_params` return ``values``."""
    out: dict[str, Any] = {}
    for param in space.params:
        if param.name not in values:
            raise SettingError(f"{param.name}: no value given for this searched parameter")
        value = values[param.name]
        low, high, choices, weights = param.low, param.high, param.choices, param.weights
        if param.encoding == "fraction":
            low, high = param.bounds_given(values[param.parent_name])
            if param.kind == "categorical":
                choices, weights = param.choices_given(values[param.parent_name])
        if not _allowed(param, value, low, high, choices):
            where = ", ".join(map(str, choices)) if param.kind == "categorical" else f"[{low}, {high}]"
            raise SettingError(f"{param.name}: {value!r} is outside the search space ({where})")
        if param.encoding in ("weights", "fraction") and param.kind == "categorical":
            out[param.optuna_name] = _midpoint(choices, weights, value)
        elif param.encoding == "fraction":
            unit = _to_unit(param, value, *param.bounds_given(values[param.parent_name]))
            out[param.optuna_name] = min(1.0, max(0.0, unit))
        elif param.encoding == "power":
            out[param.optuna_name] = _exponent(param, value)
        elif param.encoding == "log1m":
            out[param.optuna_name] = 1.0 - value
        else:
            out[param.optuna_name] = value
    return out


def _allowed(param: SearchParam, value: Any, low: Any, high: Any, choices: tuple[Any, ...]) -> bool:
    if param.kind == "categorical":
        return value in choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if param.kind == "int":
        if not float(value).is_integer():
            return False
        if param.scale in ("power", "multiple"):
            return int(value) in param.grid(low, high)
    return low <= value <= high


def _exponent(param: SearchParam, value: int) -> int:
    base = param.base or 2
    exponent = round(math.log(value, base))
    return exponent if base**exponent == value else math.floor(math.log(value, base))
