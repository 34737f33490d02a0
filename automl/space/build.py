"""The search space: TAO schema rows + the base spec -> searched parameters (DESIGN section 5).

Which parameters: the schema's ``automl_default_parameters``, or exactly the user's
``hyperparameters`` list (an empty list means the defaults, as in TAO); a user range adds its
parameter too. ``automl_enabled: false`` parameters need ``override_disabled``
(``override_automl_disabled_params``). Unknown names are errors with close matches. A default
parameter that cannot be searched is listed in ``excluded``; an explicitly requested one is an error.

Inert parameters (they cannot change the trained model) are left out, even when requested, and
listed with the reason:
``dataset.workers`` (speed only); ``train.optim.momentum`` while the optimizer is AdamW;
``train.optim.lr_step_size`` unless ``lr_scheduler`` is StepLR; ``train.ema.decay`` unless
``train.enable_ema``; ``train.optim.lr_backbone`` when ``model.train_backbone`` is false. When the
deciding key is itself searched, the parameter stays. With StepLR, a derived ``lr_step_size`` range is
capped at ``train.num_epochs`` (the scheduler steps per epoch, so a larger step never decays).

Ranges: see :mod:`automl.space.rules` (infinite bounds, ``> 0`` lower bounds, log scale, ``^ k``,
``/ k``, user ranges). Relations always hold: ``math_cond "> depends_on"`` (and ``>=``, ``<``,
``<=``) and TAO's network hook ``num_select <= num_queries`` (``< num_queries`` with one class,
since TAO caps at ``num_queries * num_classes - 1``). A dependant whose parent is searched is
sampled as a fraction of the range the sampled parent allows; a searched parent whose dependant
is fixed is narrowed so the fixed value stays valid (e.g. ``num_queries >= num_select``).
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from automl.errors import SettingError
from automl.space.params import RELATIONS, Excluded, SearchParam, SearchSpace
from automl.space.rules import (
    CHOICE_TYPES,
    NUMERIC,
    choice_param,
    numeric_param,
    parse_math_cond,
    parse_user_range,
)
from automl.space.sampling import encode_params, sample_params
from automl.space.schema_rows import SchemaRow, collection_names, rows_by_name
from automl.space.table import format_space_table
from automl.spec import get_dotted

__all__ = [
    "Excluded",
    "SearchParam",
    "SearchSpace",
    "apply_params",
    "build_space",
    "encode_params",
    "format_space_table",
    "sample_params",
]

OVERRIDE_FLAG = "override_automl_disabled_params"


def build_space(
    schema: Mapping[str, Any],
    spec: Mapping[str, Any],
    *,
    hyperparameters: Sequence[str] | None = None,
    override_disabled: bool = False,
    user_ranges: Mapping[str, Any] | None = None,
    also: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """Resolve the searched parameters of a TAO ``schema`` around the base ``spec``'s values.
    ``also``: more default parameters (name -> default range, None for the schema's rule), searched
    even where ``automl_enabled`` is false and left out with a reason when they cannot be, unless the
    user gave ``hyperparameters`` (a latency sweep's architecture keys, ``automl.space.architecture``)."""
    rows = rows_by_name(schema)
    sections = collection_names(schema)
    ranges = dict(user_ranges or {})
    if isinstance(hyperparameters, str):
        hyperparameters = [part.strip() for part in hyperparameters.split(",") if part.strip()]
    names = list(dict.fromkeys(hyperparameters or schema.get("automl_default_parameters") or []))
    extra = {} if hyperparameters else dict(also or {})
    names += [n for n in extra if n not in names]
    defaults = {n: r for n, r in extra.items() if r is not None and n not in ranges}
    names += [n for n in ranges if n not in names]
    requested = set(hyperparameters or ()) | set(ranges)
    for name in names:
        _check_known(name, rows, sections)
    selected = set(names)
    params: dict[str, SearchParam] = {}
    excluded: list[Excluded] = []
    for name in names:
        row = rows[name]
        try:
            reason = _disabled_or_inert(row, spec, selected, override_disabled or name in extra)
            if reason is not None and name in requested and reason.startswith("automl_enabled"):
                raise SettingError(f"{name}: {reason}")
            if reason is not None:
                excluded.append(Excluded(name, reason))
                continue
            value = get_dotted(spec, name, row.default)
            param = _param(row, value, ranges.get(name, defaults.get(name)), spec)
            if param is not None and name in defaults:
                param = replace(param, note="latency sweep default")
        except SettingError as exc:
            if name in requested:
                raise
            excluded.append(Excluded(name, str(exc).removeprefix(f"{name}: ")))
            continue
        if param is None:
            excluded.append(Excluded(name, "its range holds a single value"))
        else:
            params[name] = param
    _apply_relations(rows, spec, params, excluded)
    return SearchSpace(params=_sampling_order(params), excluded=excluded)


def apply_params(spec: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with every dotted ``params`` key set (missing sections are created)."""
    out = copy.deepcopy(dict(spec))
    for key, value in params.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return out


def _check_known(name: str, rows: Mapping[str, SchemaRow], sections: set[str]) -> None:
    if name in rows:
        return
    leaf = name.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, list(rows), n=3, cutoff=0.6)
    close += [r for r in rows if r.rsplit(".", 1)[-1] == leaf and r not in close][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    what = "is a section, not a parameter" if name in sections else "unknown parameter"
    raise SettingError(f"{name}: {what} in the train schema{hint}")


def _disabled_or_inert(
    row: SchemaRow, spec: Mapping[str, Any], selected: set[str], override_disabled: bool
) -> str | None:
    name = row.parameter
    if row.automl_enabled is False and not override_disabled:
        return f"automl_enabled is false in the schema; set {OVERRIDE_FLAG}=true to search it"
    if name == "dataset.workers":
        return "data-loader workers change speed, not the model"
    if name == "train.optim.momentum" and "train.optim.optimizer" not in selected:
        optimizer = get_dotted(spec, "train.optim.optimizer", "AdamW")
        if optimizer == "AdamW":
            return "train.optim.optimizer is AdamW, which ignores momentum"
    if name == "train.optim.lr_step_size" and "train.optim.lr_scheduler" not in selected:
        scheduler = get_dotted(spec, "train.optim.lr_scheduler", "MultiStep")
        if scheduler != "StepLR":
            return f"train.optim.lr_scheduler is {scheduler}; lr_step_size is used only by StepLR"
    if name == "train.optim.lr_decay" and not (
        {"train.optim.lr_steps", "train.optim.lr_step_size", "train.optim.lr_scheduler"} & selected
    ):
        reason = _decay_never_applies(spec)
        if reason:
            return reason
    if name == "train.ema.decay" and "train.enable_ema" not in selected:
        if not get_dotted(spec, "train.enable_ema", False):
            return "train.enable_ema is false, so the EMA decay is unused"
    if name == "train.optim.lr_backbone" and "model.train_backbone" not in selected:
        if get_dotted(spec, "model.train_backbone", True) is False:
            return "model.train_backbone is false, so the backbone is frozen"
    return None


def _decay_never_applies(spec: Mapping[str, Any]) -> str | None:
    """lr_decay is inert when the schedule never steps within the training run."""
    epochs = get_dotted(spec, "train.num_epochs")
    if not isinstance(epochs, int):
        return None
    if get_dotted(spec, "train.optim.lr_scheduler", "MultiStep") == "StepLR":
        size = get_dotted(spec, "train.optim.lr_step_size", 1000)
        if isinstance(size, int) and size >= epochs:
            return f"train.optim.lr_step_size ({size}) >= train.num_epochs ({epochs}): the lr never decays"
        return None
    steps = get_dotted(spec, "train.optim.lr_steps", [1000]) or []
    if all(isinstance(s, int) and s >= epochs for s in steps):
        return (
            f"train.optim.lr_steps {list(steps)} are all >= train.num_epochs ({epochs}): the lr never decays"
        )
    return None


def _param(row: SchemaRow, value: Any, user_range: Any, spec: Mapping[str, Any]) -> SearchParam | None:
    choices = row.value_type in CHOICE_TYPES or (row.value_type == "string" and row.valid_options)
    if row.value_type not in NUMERIC and not choices:
        raise SettingError(f"{row.parameter}: a {row.value_type} parameter cannot be searched")
    user = None if user_range is None else parse_user_range(row, user_range)
    if row.value_type in NUMERIC:
        param = numeric_param(row, value, user)
    else:
        param = choice_param(row, value, user)
    epochs = get_dotted(spec, "train.num_epochs")
    if (
        row.parameter == "train.optim.lr_step_size"
        and user is None
        and isinstance(epochs, int)
        and param.high is not None
        and epochs < param.high
    ):
        high = max(int(param.low or 1), epochs)
        param = replace(param, high=high, note=f"capped at train.num_epochs ({epochs})")
    return param if _size(param) > 1 else None


def _numeric(param: SearchParam) -> bool:
    if param.kind != "categorical":
        return True
    return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in param.choices)


def _size(param: SearchParam) -> float:
    if param.kind == "categorical":
        return len(param.choices)
    if param.kind == "int" and param.scale in ("power", "multiple"):
        return len(param.grid())
    low, high = param.span
    if param.kind == "int":
        return high - low + 1
    return math.inf if high > low else 1 if high == low else 0


def _relations(rows: Mapping[str, SchemaRow], spec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(dependant, parent, relation) for every relational row: dependant <relation> parent."""
    out = []
    for row in rows.values():
        if not row.depends_on:
            continue
        relation = parse_math_cond(row.math_cond).relation
        if (
            relation is None
            and row.parameter.endswith("num_select")
            and row.depends_on.endswith("num_queries")
        ):
            classes = get_dotted(spec, "dataset.num_classes")
            relation = "lt" if classes == 1 else "le"
        if relation is not None and row.depends_on in rows:
            out.append((row.parameter, row.depends_on, relation))
    return out


def _apply_relations(
    rows: Mapping[str, SchemaRow],
    spec: Mapping[str, Any],
    params: dict[str, SearchParam],
    excluded: list[Excluded],
) -> None:
    relations = _relations(rows, spec)
    for _ in range(2):  # twice, so a chain a > b > c settles
        for dep, parent, relation in relations:
            if parent not in params:
                continue
            dep_param = params.get(dep)
            if dep_param is not None and not _numeric(dep_param):
                continue
            if dep_param is not None and dep_param.kind == "categorical":
                lo, hi = min(dep_param.choices), max(dep_param.choices)
            elif dep_param is not None:
                grid = dep_param.grid() if dep_param.kind == "int" else None
                lo, hi = (grid[0], grid[-1]) if grid else (dep_param.low, dep_param.high)
            elif dep.rsplit(".", 1)[0] != parent.rsplit(".", 1)[0]:
                continue  # a fixed dependant elsewhere (distill.teacher.* on model.*): not this model's
            else:
                lo = hi = get_dotted(spec, dep, rows[dep].default)
                if not isinstance(lo, (int, float)):
                    continue
            narrowed = _narrow_parent(params[parent], relation, lo, hi)
            if narrowed is None:
                del params[parent]
                fixed = f"{dep} = {lo}" if dep_param is None else f"{dep} in [{lo}, {hi}]"
                excluded.append(
                    Excluded(parent, f"no value keeps {dep} {RELATIONS[relation]} {parent} with {fixed}")
                )
            elif narrowed is not params[parent]:
                why = f"narrowed so {dep} {RELATIONS[relation]} {parent} can hold"
                note = params[parent].note
                params[parent] = replace(
                    narrowed, note=f"{note}; {why}" if note and why not in note else note or why
                )
    for dep, parent, relation in relations:
        dep_param = params.get(dep)
        if dep_param is None or not _numeric(dep_param):
            continue
        if parent in params:
            params[dep] = replace(dep_param, parent=parent, relation=relation, encoding="fraction")
            continue
        parent_value = get_dotted(spec, parent, rows[parent].default)
        if not isinstance(parent_value, (int, float)):
            continue
        related = replace(dep_param, relation=relation)
        if dep_param.kind == "categorical":
            choices, weights = related.choices_given(parent_value)
            narrowed = replace(dep_param, choices=choices, weights=weights if dep_param.weights else ())
        else:
            lo, hi = related.bounds_given(parent_value)
            narrowed = replace(dep_param, low=_as(dep_param, lo, up=True), high=_as(dep_param, hi, up=False))
        if _size(narrowed) <= 1:
            del params[dep]
            excluded.append(
                Excluded(
                    dep,
                    f"{parent} is fixed at {parent_value}, leaving no range for {dep} {RELATIONS[relation]} it",
                )
            )
        else:
            params[dep] = replace(narrowed, note=f"{RELATIONS[relation]} {parent} ({parent_value})")


def _narrow_parent(param: SearchParam, relation: str, dep_low: float, dep_high: float) -> SearchParam | None:
    """``param`` limited so that some dependant value in [dep_low, dep_high] satisfies the relation."""
    is_int = param.kind == "int" or (
        param.kind == "categorical" and all(isinstance(c, int) for c in param.choices)
    )
    below = (dep_high - 1) if is_int else math.nextafter(dep_high, -math.inf)
    above = (dep_low + 1) if is_int else math.nextafter(dep_low, math.inf)
    low, high = {"gt": (None, below), "ge": (None, dep_high), "lt": (above, None), "le": (dep_low, None)}[
        relation
    ]
    if param.kind == "categorical":
        kept = [c for c in param.choices if (low is None or c >= low) and (high is None or c <= high)]
        if len(kept) == len(param.choices):
            return param
        if len(kept) < 2:
            return None
        weights = tuple(w for c, w in zip(param.choices, param.weights) if c in kept) if param.weights else ()
        total = sum(weights) if weights else 1.0
        return replace(param, choices=tuple(kept), weights=tuple(w / total for w in weights))
    old_low, old_high = param.span
    new_low = old_low if low is None else max(old_low, _as(param, low, up=True))
    new_high = old_high if high is None else min(old_high, _as(param, high, up=False))
    if (new_low, new_high) == (old_low, old_high):
        return param
    narrowed = replace(param, low=new_low, high=new_high)
    if new_low > new_high or _size(narrowed) <= 1:
        return None
    return narrowed


def _as(param: SearchParam, value: float, *, up: bool) -> float:
    if param.kind != "int":
        return float(value)
    return int(math.ceil(value) if up else math.floor(value))


def _sampling_order(params: dict[str, SearchParam]) -> list[SearchParam]:
    ordered: list[SearchParam] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        parent = params[name].parent
        if parent in params:
            visit(parent)
        ordered.append(params[name])

    for name in params:
        visit(name)
    return ordered
