"""Flat rows from a TAO-format schema file (tao.md section 2.2), one per leaf field.

A TAO schema is not strict JSON Schema: bounds may be the token ``Infinity``, types are TAO names
(``int``, ``float``, ``categorical``, ``ordered_int``, ``collection``, ...), ``properties`` may hold
a stray list (``automl_disabled_parameters``), a MISSING default is ``"???"`` and a collection whose
default is None has no ``properties``. The rows here smooth those quirks over: a collection without
properties is a leaf of type ``collection``, ``"???"`` becomes ``None``, non-dict entries of
``properties`` are skipped, and missing bounds are ``None`` (infinite ones stay ``inf``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.errors import SettingError

__all__ = ["SchemaRow", "collection_names", "load_schema", "rows_by_name", "schema_rows"]

MISSING = "???"


@dataclass(frozen=True)
class SchemaRow:
    """One leaf of a TAO schema (the columns of TAO's ``spec_utils.flatten_properties``)."""

    parameter: str
    value_type: str
    default: Any = None
    valid_min: float | None = None
    valid_max: float | None = None
    valid_options: tuple[Any, ...] | None = None
    option_weights: tuple[float, ...] | None = None
    automl_enabled: bool | None = None
    math_cond: str | None = None
    parent_param: bool = False
    depends_on: str | None = None


def load_schema(path: str | Path) -> dict[str, Any]:
    """Read a TAO schema file; ``Infinity``/``NaN`` tokens are accepted as Python's ``json`` does."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingError(f"{path}: schema file not found; run `rtdetr schemas` to generate it") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SettingError(
            f"{path}: not a readable schema ({exc}); regenerate it with `rtdetr schemas`"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("properties"), dict):
        raise SettingError(f"{path}: not a TAO schema (no 'properties' mapping)")
    return data


def schema_rows(schema: Mapping[str, Any]) -> list[SchemaRow]:
    """Every leaf of ``schema['properties']`` as a row, in file order, with dotted names."""
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        raise SettingError("schema has no 'properties' mapping; is it a TAO schema file?")
    return list(_walk(props, ""))


def rows_by_name(schema: Mapping[str, Any]) -> dict[str, SchemaRow]:
    return {row.parameter: row for row in schema_rows(schema)}


def collection_names(schema: Mapping[str, Any]) -> set[str]:
    """Dotted names of the sections that have properties (``train``, ``train.optim``, ...)."""
    out: set[str] = set()

    def walk(props: Mapping[str, Any], prefix: str) -> None:
        for key, node in props.items():
            if isinstance(node, Mapping) and isinstance(node.get("properties"), Mapping):
                out.add(prefix + key)
                walk(node["properties"], f"{prefix}{key}.")

    props = schema.get("properties")
    if isinstance(props, Mapping):
        walk(props, "")
    return out


def _walk(props: Mapping[str, Any], prefix: str) -> Iterator[SchemaRow]:
    for key, node in props.items():
        if not isinstance(node, Mapping):
            continue
        name = prefix + key
        children = node.get("properties")
        if isinstance(children, Mapping):
            yield from _walk(children, name + ".")
        else:
            yield _row(name, node)


def _row(name: str, node: Mapping[str, Any]) -> SchemaRow:
    value_type = str(node.get("type", "string"))
    value_type = {"number": "float", "integer": "int", "boolean": "bool", "object": "collection"}.get(
        value_type, value_type
    )
    options = node.get("enum")
    if isinstance(options, list):
        if value_type == "int":
            value_type = "ordered_int"
        elif value_type not in ("ordered_int", "categorical", "list", "subset_list"):
            value_type = "categorical"
    weights = node.get("option_weights")
    enabled = node.get("automl_enabled")
    if isinstance(enabled, str):
        enabled = {"TRUE": True, "FALSE": False}.get(enabled.upper())
    parent = node.get("parent_param")
    return SchemaRow(
        parameter=name,
        value_type=value_type,
        default=_clean(node.get("default")),
        valid_min=_bound(node.get("minimum")),
        valid_max=_bound(node.get("maximum")),
        valid_options=tuple(options) if isinstance(options, list) else None,
        option_weights=tuple(float(w) for w in weights) if isinstance(weights, list) else None,
        automl_enabled=enabled if isinstance(enabled, bool) else None,
        math_cond=str(node["math_cond"]).strip() if node.get("math_cond") not in (None, "") else None,
        parent_param=parent is True or str(parent).upper() == "TRUE",
        depends_on=str(node["depends_on"]) if node.get("depends_on") else None,
    )


def _bound(value: Any) -> float | None:
    """A numeric bound; ``"inf"``/``Infinity`` stay infinite, ``""``/None/NaN mean no bound."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    return number


def _clean(value: Any) -> Any:
    if value == MISSING:
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
