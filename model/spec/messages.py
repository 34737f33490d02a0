"""jsonschema errors -> one line each that names the dotted key, the value and what is allowed."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from model.spec.overrides import dotted

__all__ = ["format_error", "nan_problems", "schema_problems", "suggest"]

_KIND = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping (key: value pairs)",
    "array": "a list",
    "null": "empty (null)",
}


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    words = [_KIND.get(k, str(k)) for k in kinds if k and k != "null"]
    text = " or ".join(words) if words else "a valid value"
    bounds = []
    if "minimum" in schema:
        bounds.append(f">= {schema['minimum']}")
    if "maximum" in schema:
        bounds.append(f"<= {schema['maximum']}")
    return text + (f" ({' and '.join(bounds)})" if bounds else "")


def suggest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    choices = list(dict.fromkeys(str(c) for c in choices))
    found = difflib.get_close_matches(word, choices, n=n, cutoff=0.6)
    if not found:
        lowered = {c.lower(): c for c in choices}
        found = [lowered[m] for m in difflib.get_close_matches(word.lower(), lowered, n=n, cutoff=0.6)]
    return found


def _unknown_key(path: list[Any], key: str, allowed: list[str], all_keys: list[str]) -> str:
    full = dotted([*path, key])
    # the same leaf name elsewhere in the section first (train.lr -> train.optim.lr), then near spellings
    section = f"{path[0]}." if path else ""
    hits = [k for k in all_keys if k.rsplit(".", 1)[-1] == key and k.startswith(section) and k != full][:2]
    hits = hits or suggest(full, [dotted([*path, k]) for k in allowed], n=1) or suggest(full, all_keys, n=1)
    if hits:
        return f"{full}: unknown key; did you mean {' or '.join(hits)}?"
    where = dotted(path) or "the top level"
    options = ", ".join(sorted(allowed)) if len(allowed) <= 12 else ", ".join(sorted(allowed)[:12]) + ", ..."
    return f"{full}: unknown key; valid keys at {where}: {options}"


def format_error(error: ValidationError, all_keys: list[str]) -> list[str]:
    path = list(error.absolute_path)
    key = dotted(path) or "the spec"
    value = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator = error.validator
    if validator == "additionalProperties":
        allowed = list((schema.get("properties") or {}).keys())
        extra = [k for k in value if k not in allowed] if isinstance(value, dict) else []
        return [_unknown_key(path, str(k), allowed, all_keys) for k in extra]
    if validator == "type":
        return [f"{key}: got {_show(value)} ({_kind_of(value)}); expected {_expected(schema)}"]
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [f"{key}: got {_show(value)}; allowed range is {_expected(schema)}"]
    if validator == "enum":
        options = [o for o in schema.get("enum", []) if o is not None]
        hits = suggest(str(value), [str(o) for o in options], n=1)
        hint = f"; did you mean {hits[0]}?" if hits else ""
        return [f"{key}: got {_show(value)}; allowed values: {', '.join(map(str, options))}{hint}"]
    if validator == "pattern":
        return [f"{key}: got {_show(value)}; it must match the pattern {schema.get('pattern')}"]
    if validator == "anyOf":
        # a "???"-or-typed field: report the typed branch
        typed = next((s for s in schema.get("anyOf", []) if "const" not in s), {})
        return [f"{key}: got {_show(value)} ({_kind_of(value)}); expected {_expected(typed)}"]
    message = re.sub(r"\s+", " ", error.message)
    return [f"{key}: {message}"]


def schema_problems(
    spec: Mapping[str, Any], json_schema: Mapping[str, Any], all_keys: list[str]
) -> list[str]:
    validator = Draft202012Validator(json_schema)
    errors = sorted(validator.iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path])
    problems: list[str] = []
    for error in errors:
        for line in format_error(error, all_keys):
            if line not in problems:
                problems.append(line)
    return problems


def _typed(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """A "???"-or-typed field (``anyOf``) -> its typed branch; any other node as it is."""
    if "anyOf" in node:
        return next((s for s in node["anyOf"] if "const" not in s), {})
    return node


def _node_at(schema: Mapping[str, Any], path: list[str | int]) -> Mapping[str, Any] | None:
    """The JSON Schema node describing the value at ``path`` (None inside a free-form mapping)."""
    node: Any = schema
    for part in path:
        node = _typed(node)
        if isinstance(part, int):
            node = node.get("items")
        else:
            node = (node.get("properties") or {}).get(part)
        if not isinstance(node, Mapping):
            return None
    return _typed(node)


def _nans(value: Any, path: list[str | int]) -> Iterable[list[str | int]]:
    if isinstance(value, float) and math.isnan(value):
        yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _nans(item, [*path, str(key)])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nans(item, [*path, index])


def nan_problems(
    spec: Mapping[str, Any], json_schema: Mapping[str, Any], reported: Iterable[str] = ()
) -> list[str]:
    """One problem per NaN anywhere in ``spec`` (YAML ``.nan``, an override, a Python mapping).

    NaN compares false with every bound, so the schema's range check lets it through (``inf`` is
    caught there by any finite bound). Keys in ``reported`` already have a problem (an integer field
    given ``.nan`` is a type error) and are skipped.
    """
    already = {line.split(": ", 1)[0] for line in reported}
    problems = []
    for path in _nans(spec, []):
        key = dotted(path)
        if key in already:
            continue
        node = _node_at(json_schema, path)
        if node is None:
            fix = "give a real number"
        elif "minimum" in node or "maximum" in node:
            fix = f"allowed range is {_expected(node)}"
        else:
            fix = "allowed range is any real number"
        problems.append(f"{key}: got nan (not a number); {fix}")
    return problems
