"""TAO's generated schema format -> JSON Schema.

TAO schemas (``schemas/<action>.schema.json``, and NVIDIA's packaged ones) are not JSON Schema:
their types are TAO names (``int``, ``float``, ``bool``, ``string``, ``categorical``, ``ordered_int``,
``list``, ``collection``), bounds may be ``Infinity``, ``properties`` may hold a stray list
(``automl_disabled_parameters``), collections may have no ``properties`` (then the default tells the
shape), and MISSING values are written ``"???"``. This module reads such files and converts them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MISSING",
    "all_dotted_keys",
    "child_properties",
    "convert_node",
    "read_tao_schema",
    "to_json_schema",
]

MISSING = "???"

_SCALAR = {
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "string": "string",
    "str": "string",
}


def read_tao_schema(path: str | Path) -> dict[str, Any]:
    """Read a TAO schema file; accepts the non-standard ``Infinity``/``NaN`` tokens TAO writes."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def child_properties(node: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The real sub-fields of a collection: skips converter artefacts such as a list-valued entry."""
    props = node.get("properties") or {}
    return {k: v for k, v in props.items() if isinstance(v, dict)}


def _json_type_of(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return _array_of(value)
    if isinstance(value, dict):
        return _object_from_default(value)
    return {}


def _array_of(default: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array"}
    if default:
        first = default[0]
        item = _json_type_of(first)
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            item = {"type": "number"} if any(isinstance(v, float) for v in default) else {"type": "integer"}
        schema["items"] = item
    return schema


def _object_from_default(default: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: _nullable(_json_type_of(v), v is None) for k, v in default.items()},
        "additionalProperties": False,
    }


def _nullable(schema: dict[str, Any], allow: bool) -> dict[str, Any]:
    if not allow or "type" not in schema:
        return schema
    kind = schema["type"]
    kinds = kind if isinstance(kind, list) else [kind]
    schema = dict(schema)
    schema["type"] = [*kinds, "null"] if "null" not in kinds else kinds
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _bound(value: Any) -> float | int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isinf(number) or math.isnan(number):
        return None
    return int(number) if number.is_integer() and not isinstance(value, float) else number


def convert_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one TAO schema node (a field or a collection) to JSON Schema."""
    kind = node.get("type")
    default = node.get("default", None)
    nullable = default is None or default == MISSING
    if kind == "collection" or (kind is None and "properties" in node):
        props = child_properties(node)
        if props:
            schema: dict[str, Any] = {
                "type": "object",
                "properties": {k: convert_node(v) for k, v in props.items()},
                "additionalProperties": False,
            }
        elif isinstance(default, dict) and default:
            schema = _object_from_default(default)
        else:
            schema = {"type": "object"}
        return _nullable(schema, nullable)
    if kind in ("categorical", "ordered_int", "ordered") or "enum" in node:
        options = list(node.get("enum") or [])
        schema = {"enum": options}
        if options and all(isinstance(o, int) and not isinstance(o, bool) for o in options):
            schema["type"] = "integer"
        elif options and all(isinstance(o, str) for o in options):
            schema["type"] = "string"
        return _nullable(schema, nullable)
    if kind in ("list", "subset_list", "optional_list"):
        return _nullable(_array_of(default if isinstance(default, list) else []), nullable)
    if kind in _SCALAR:
        schema = {"type": _SCALAR[kind]}
        for tao_key, js_key in (("minimum", "minimum"), ("maximum", "maximum")):
            bound = _bound(node.get(tao_key))
            if bound is not None:
                schema[js_key] = bound
        if "pattern" in node and schema["type"] == "string":
            schema["pattern"] = node["pattern"]
        # "???" marks a value TAO requires at run time; it is a string whatever the field type.
        if default == MISSING and schema["type"] != "string":
            schema = {"anyOf": [schema, {"const": MISSING}]}
            return schema
        return _nullable(schema, nullable)
    return {}


def to_json_schema(tao_schemas: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One JSON Schema for a whole experiment spec: the union of the given action schemas' sections."""
    sections: dict[str, dict[str, Any]] = {}
    for tao in tao_schemas:
        for key, node in child_properties(tao).items():
            converted = convert_node(node)
            if key in sections and sections[key].get("properties") and not converted.get("properties"):
                continue
            sections[key] = converted
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": sections,
        "additionalProperties": False,
    }


def all_dotted_keys(schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key a JSON Schema (as made by ``to_json_schema``) allows; used for suggestions."""
    keys: list[str] = []
    for name, sub in (schema.get("properties") or {}).items():
        full = f"{prefix}.{name}" if prefix else name
        keys.append(full)
        keys.extend(all_dotted_keys(sub, full))
        items = sub.get("items") if isinstance(sub, dict) else None
        if isinstance(items, dict) and items.get("properties"):
            keys.extend(all_dotted_keys(items, f"{full}[0]"))
    return keys
