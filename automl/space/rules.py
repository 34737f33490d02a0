"""How one schema row becomes a searchable range (the rules ``automl.space.build`` documents).

Range rules for a numeric row with spec value ``v`` (TAO would collapse an infinite bound onto the
default and sample floats linearly in [0, 1]; these rules keep the search meaningful instead):

- Finite bounds that are both usable: search [min, max] as given.
- A float whose lower bound 0 is excluded by ``math_cond "> 0"`` (lr, weight_decay, ...):
  ``[v/100, min(max, v*10)]``; decay-like values (max 1, ``v >= 0.5``: ema decay, momentum) search
  ``1 - x`` in ``[(1-v)/10, min(0.5, (1-v)*10)]`` on a log scale instead, so 0.999 spans
  [0.99, 0.9999] and never reaches 1.
- A float with an infinite/missing bound: ``[max(min, v/10), v*10]``.
- An int with an infinite/missing max (batch_size, num_queries, dec_layers, enc_layers):
  ``[max(min, v//2 or 1), v*2]``.
- A value of 0 (or none) with an open bound has no "around": the user must give a range.
- Scale: a positive float range spanning >= 2 decades (max/min >= 100) is log-scaled; int ranges
  are linear unless the user range says ``:log``.
- ``math_cond "^ k"``: only powers k^p (p >= 1) in the range; ``"/ k"``: only multiples of k;
  ``"> x"``/``">= x"`` raise the lower bound; relational ``"> depends_on"`` (and >=, <, <=) is
  enforced against the sampled parent by ``automl.space.build``.

User ranges: ``low:high`` or ``low:high:log|linear`` for numbers, ``a,b,c`` for a subset of
options (or explicit numeric choices), or TAO's ``{"valid_min", "valid_max", "valid_options",
"option_weights"}`` mapping. They must stay inside the schema's bounds and options.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from automl.errors import SettingError
from automl.space.params import SearchParam, powers_in
from automl.space.schema_rows import SchemaRow

__all__ = ["CHOICE_TYPES", "NUMERIC", "choice_param", "numeric_param", "parse_math_cond", "parse_user_range"]

NUMERIC = ("int", "float")
CHOICE_TYPES = ("categorical", "ordered_int", "bool")
_COND_RE = re.compile(r"(>=|<=|!=|>|<|/|\^)\s*(depends_on|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
RELATION_OF = {">": "gt", ">=": "ge", "<": "lt", "<=": "le"}


@dataclass(frozen=True)
class MathCond:
    """A parsed ``math_cond``: ``"> 0.0"``, ``">= 1"``, ``"^ 2"``, ``"/ 8"``, ``"> depends_on"``."""

    strict_low: float | None = None
    inclusive_low: float | None = None
    power: int | None = None
    multiple: int | None = None
    relation: str | None = None


def parse_math_cond(text: str | None) -> MathCond:
    if not text:
        return MathCond()
    strict = inclusive = None
    power = multiple = relation = None
    for op, arg in _COND_RE.findall(text):
        if arg == "depends_on":
            relation = RELATION_OF.get(op)
            continue
        number = float(arg)
        if op == ">":
            strict = number
        elif op == ">=":
            inclusive = number
        elif op == "^" and number >= 2 and number.is_integer():
            power = int(number)
        elif op == "/" and number >= 1 and number.is_integer():
            multiple = int(number)
    return MathCond(strict, inclusive, power, multiple, relation)


def numeric_param(row: SchemaRow, value: Any, user: Mapping[str, Any] | None) -> SearchParam:
    """A float/int row as a SearchParam; ``user`` is a parsed user range or None."""
    cond = parse_math_cond(row.math_cond)
    name, is_int = row.parameter, row.value_type == "int"
    lo, hi = _schema_bounds(row, cond)
    if user is not None and user.get("choices") is not None:
        return _choice_param(row, value, user["choices"], user.get("weights"), lo, hi, cond)
    if user is not None:
        low, high, scale_hint = _check_user_bounds(row, user, lo, hi, cond)
        note = "user range"
    else:
        low, high, note, scale_hint = _derived_bounds(row, value, lo, hi, cond)
    if is_int:
        low, high = math.ceil(low), math.floor(high)
        if cond.power or cond.multiple:
            kind_scale = "power" if cond.power else "multiple"
            base = cond.power or cond.multiple
            param = SearchParam(
                name,
                "int",
                value,
                low,
                high,
                kind_scale,
                base,
                encoding=kind_scale if cond.power else "direct",
                note=note,
            )
            grid = param.grid()
            if not grid:
                what = f"powers of {base}" if cond.power else f"multiples of {base}"
                raise SettingError(f"{name}: no {what} in [{low}, {high}]; give a range that has some")
            return param
    if low > high or (low == high and user is not None):
        raise SettingError(f"{name}: empty range [{low}, {high}]; give low < high")
    auto_log = not is_int and low > 0 and high / low >= 100
    scale = scale_hint or ("log" if auto_log else "linear")
    if scale == "log" and low <= 0:
        raise SettingError(f"{name}: a log scale needs a positive low bound; got {low}")
    kind = "int" if is_int else "float"
    encoding = "log1m" if scale == "log1m" else "direct"
    low, high = (int(low), int(high)) if is_int else (float(low), float(high))
    return SearchParam(name, kind, value, low, high, scale, encoding=encoding, note=note)


def choice_param(row: SchemaRow, value: Any, user: Mapping[str, Any] | None) -> SearchParam:
    """A categorical/ordered_int/bool row as a SearchParam (optionally a user subset)."""
    options: tuple[Any, ...] = (True, False) if row.value_type == "bool" else tuple(row.valid_options or ())
    weights = row.option_weights
    if weights is not None and len(weights) != len(options):
        raise SettingError(
            f"{row.parameter}: the schema has {len(weights)} option_weights for {len(options)} options"
        )
    if user is not None:
        chosen = user.get("choices") or list(options)
        bad = [c for c in chosen if c not in options]
        if bad:
            raise SettingError(
                f"{row.parameter}: {', '.join(map(str, bad))} not among the options "
                f"{', '.join(map(str, options))}"
            )
        if user.get("weights") is not None:
            weights = tuple(user["weights"])
        elif weights is not None:
            weights = tuple(weights[options.index(c)] for c in chosen)
        options = tuple(chosen)
    return _weighted(row.parameter, "categorical", value, options, weights, "user subset" if user else "")


def _choice_param(
    row: SchemaRow, value: Any, choices: list[Any], weights: Any, lo: float, hi: float, cond: MathCond
) -> SearchParam:
    for choice in choices:
        if isinstance(choice, bool) or not isinstance(choice, (int, float)):
            raise SettingError(f"{row.parameter}: choice {choice!r} is not a number")
        if row.value_type == "int" and not float(choice).is_integer():
            raise SettingError(f"{row.parameter}: choice {choice!r} is not an integer")
        if not lo <= choice <= hi:
            raise SettingError(f"{row.parameter}: choice {choice!r} is outside [{lo}, {hi}]")
        if cond.power and choice not in powers_in(cond.power, choice, choice):
            raise SettingError(
                f"{row.parameter}: choice {choice!r} is not a power of {cond.power} ({row.math_cond!r})"
            )
        if cond.multiple and choice % cond.multiple:
            raise SettingError(
                f"{row.parameter}: choice {choice!r} is not a multiple of {cond.multiple} ({row.math_cond!r})"
            )
    typed = tuple(int(c) if row.value_type == "int" else float(c) for c in choices)
    return _weighted(row.parameter, "categorical", value, typed, weights, "user choices")


def _weighted(
    name: str, kind: str, value: Any, options: tuple[Any, ...], weights: Any, note: str
) -> SearchParam:
    if len(set(map(repr, options))) < 2:
        raise SettingError(f"{name}: a search needs at least two distinct options; got {list(options)}")
    if weights is None:
        return SearchParam(name, kind, value, scale="choice", choices=options, note=note)
    weights = tuple(float(w) for w in weights)
    if len(weights) != len(options) or any(w < 0 or math.isnan(w) for w in weights) or sum(weights) <= 0:
        raise SettingError(
            f"{name}: option_weights {list(weights)} must be {len(options)} non-negative numbers"
        )
    kept = [(o, w) for o, w in zip(options, weights) if w > 0]
    total = sum(w for _, w in kept)
    return SearchParam(
        name,
        kind,
        value,
        scale="weights",
        choices=tuple(o for o, _ in kept),
        weights=tuple(w / total for _, w in kept),
        encoding="weights",
        note=note,
    )


def _schema_bounds(row: SchemaRow, cond: MathCond) -> tuple[float, float]:
    lo = row.valid_min if row.valid_min is not None else -math.inf
    hi = row.valid_max if row.valid_max is not None else math.inf
    if cond.inclusive_low is not None:
        lo = max(lo, cond.inclusive_low)
    if cond.strict_low is not None and row.value_type == "int":
        lo = max(lo, math.floor(cond.strict_low) + 1)
    return lo, hi


def _open_low(row: SchemaRow, lo: float, cond: MathCond) -> bool:
    """The lower bound itself is not allowed (``min 0`` with ``> 0.0``) or is missing."""
    if lo == -math.inf:
        return True
    return row.value_type == "float" and cond.strict_low is not None and lo <= cond.strict_low


def _derived_bounds(
    row: SchemaRow, value: Any, lo: float, hi: float, cond: MathCond
) -> tuple[float, float, str, str | None]:
    """(low, high, note, scale or None for automatic) from the schema bounds and the spec value."""
    name = row.parameter
    open_low, open_high = _open_low(row, lo, cond), hi == math.inf
    if not open_low and not open_high:
        return lo, hi, "schema bounds", None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SettingError(
            f"{name}: cannot derive a finite search range from bounds [{lo}, {hi}] around value {value!r}; "
            f"give one, e.g. {name}=low:high"
        )
    floor_low = lo if lo != -math.inf and not (row.value_type == "float" and open_low) else 0.0
    if row.value_type == "int":
        low = max(floor_low, value // 2 or 1)
        if open_high:
            return low, max(low, value * 2), f"around {value}: [max(min, v//2), 2v]", None
        return low, hi, f"around {value}: [max(1, v//2), max]", None
    if not open_high and hi == 1.0 and 0.5 <= value < 1.0 and open_low:
        c = 1.0 - value
        return 1.0 - min(0.5, c * 10), 1.0 - c / 10, f"around {value}: 1-x in [(1-v)/10, 10(1-v)]", "log1m"
    if not open_high:
        return (
            max(floor_low, value / 100),
            min(hi, value * 10),
            f"around {value}: [v/100, min(max, 10v)]",
            None,
        )
    return max(floor_low, value / 10), value * 10, f"around {value}: [v/10, 10v]", None


def _check_user_bounds(
    row: SchemaRow, user: Mapping[str, Any], lo: float, hi: float, cond: MathCond
) -> tuple[float, float, str | None]:
    name = row.parameter
    low, high = _user_bound(row, "low", user.get("low")), _user_bound(row, "high", user.get("high"))
    if low >= high:
        raise SettingError(f"{name}: range {low}:{high} is empty; give low < high")
    if low < lo or high > hi:
        raise SettingError(f"{name}: range {low}:{high} is outside the schema's bounds [{lo}, {hi}]")
    if cond.strict_low is not None and low <= cond.strict_low:
        raise SettingError(
            f"{name}: range low {low} must be > {cond.strict_low} (math_cond {row.math_cond!r})"
        )
    return float(low), float(high), user.get("scale")


def _user_bound(row: SchemaRow, label: str, bound: Any) -> float:
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or math.isnan(bound):
        raise SettingError(f"{row.parameter}: range {label} bound {bound!r} is not a number")
    if row.value_type == "int" and not float(bound).is_integer():
        raise SettingError(f"{row.parameter}: range {label} bound {bound!r} is not an integer")
    return bound


def parse_user_range(row: SchemaRow, spec: Any) -> dict[str, Any]:
    """``"1e-5:1e-3:log"``, ``"3:6"``, ``"a,b"`` or a TAO custom-range mapping -> a range dict."""
    name = row.parameter
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"valid_min", "valid_max", "valid_options", "option_weights", "log"}
        if unknown:
            raise SettingError(
                f"{name}: unknown range keys {sorted(unknown)}; use valid_min/valid_max/valid_options"
            )
        if spec.get("valid_options") is not None:
            options = spec["valid_options"]
            options = [_typed(o) for o in options.split(",")] if isinstance(options, str) else list(options)
            return {"choices": options, "weights": spec.get("option_weights")}
        scale = None if spec.get("log") is None else ("log" if spec["log"] else "linear")
        return {"low": spec.get("valid_min"), "high": spec.get("valid_max"), "scale": scale}
    if isinstance(spec, (list, tuple)):
        return {"choices": list(spec)}
    text = str(spec).strip()
    if "," in text:
        return {"choices": [_typed(part) for part in text.split(",") if part.strip()]}
    parts = text.split(":")
    if len(parts) in (2, 3) and row.value_type in NUMERIC:
        scale = parts[2].strip().lower() if len(parts) == 3 else None
        if scale not in (None, "log", "linear"):
            raise SettingError(f"{name}={text}: scale {scale!r} must be log or linear")
        return {"low": _typed(parts[0]), "high": _typed(parts[1]), "scale": scale}
    if row.value_type in CHOICE_TYPES and text:
        return {"choices": [_typed(text)]}
    raise SettingError(f"{name}={text}: not a range; give low:high[:log] for numbers or a,b,c for options")


def _typed(text: str) -> Any:
    """A YAML-typed value; numbers like ``1e-5`` (a string in YAML 1.1) are numbers here."""
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text.strip()
