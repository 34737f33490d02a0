"""Dataclass fields with TAO metadata -> TAO-format schema properties.

Mirrors what TAO's dataclass-to-JSON converter produces for one field or one section: TAO
type names, ``title``/``description``/``default``, typed ``minimum``/``maximum`` (``"inf"``
becomes ``float("inf")``), typed ``enum``, and per-section ``automl_default_parameters``,
``automl_disabled_parameters``, ``popular`` and ``required`` lists naming direct children.
While walking, it also collects the experiment-wide lists that go at the root of a schema.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RootLists", "collection_property", "leaf_property", "plain", "section_properties"]

_INT_TYPES = ("int", "ordered_int")


@dataclass
class RootLists:
    """Experiment-wide collections, gathered over every section that has a default."""

    automl_default_parameters: list[str] = field(default_factory=list)
    automl_disabled_parameters: list[str] = field(default_factory=list)
    popular: dict[str, Any] = field(default_factory=dict)


def plain(value: Any) -> Any:
    """A spec value as plain YAML/JSON data: dataclasses become dicts in field order, ``None`` is dropped."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is not None:
                out[f.name] = plain(item)
        return out
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _bound(value: int | float | str, value_type: str) -> int | float:
    if isinstance(value, str):
        return float(value)
    return int(value) if value_type in _INT_TYPES else float(value)


def _enum(options: str, value_type: str) -> list[Any]:
    items = options.split(",")
    return [int(o) for o in items] if value_type in _INT_TYPES else items


def _common(meta: dict[str, Any]) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": meta["value_type"]}
    if meta["display_name"]:
        prop["title"] = meta["display_name"]
    if meta["description"]:
        prop["description"] = meta["description"]
    if meta["automl_enabled"] in ("TRUE", "FALSE"):
        prop["automl_enabled"] = meta["automl_enabled"] == "TRUE"
    if meta["popular"] == "yes":
        prop["popular"] = True
    return prop


def leaf_property(meta: dict[str, Any], value: Any) -> dict[str, Any]:
    """The schema property of one scalar, list or free-form dict field holding ``value``."""
    value_type = meta["value_type"]
    prop = _common(meta)
    if meta["examples"]:
        prop["examples"] = list(meta["examples"])
    if value is not None and not (value_type == "collection" and value == {}):
        prop["default"] = plain(value)
    for key, target in (("valid_min", "minimum"), ("valid_max", "maximum")):
        if meta[key] not in (None, ""):
            prop[target] = _bound(meta[key], value_type)
    if meta["valid_options"]:
        prop["enum"] = _enum(meta["valid_options"], value_type)
    if meta["option_weights"] is not None:
        prop["option_weights"] = list(meta["option_weights"])
    for key in ("math_cond", "parent_param", "depends_on"):
        if meta[key]:
            prop[key] = meta[key]
    if meta["regex"] and value_type in ("string", "categorical"):
        prop["pattern"] = meta["regex"]
    return prop


def _has_required(prop: dict[str, Any]) -> bool:
    return bool(prop.get("required"))


def section_properties(
    instance: Any, path: str, root: RootLists | None
) -> tuple[dict[str, Any], list[str], list[str], list[str], list[str]]:
    """Walk one dataclass instance.

    Returns its properties and its direct children's automl-default paths, automl-disabled
    paths, popular names and required names. When ``root`` is given, every descendant is also
    recorded in the experiment-wide lists.
    """
    properties: dict[str, Any] = {}
    enabled: list[str] = []
    disabled: list[str] = []
    popular: list[str] = []
    required: list[str] = []
    for f in dataclasses.fields(instance):
        meta = f.metadata
        if "value_type" not in meta:
            raise TypeError(
                f"{type(instance).__name__}.{f.name} was not declared with a model.config field helper"
            )
        name = f"{path}.{f.name}" if path else f.name
        value = getattr(instance, f.name)
        cls = meta.get("dataclass")
        if cls is not None:
            prop = collection_property(meta, value, cls, name, root if value is not None else None)
        else:
            prop = leaf_property(meta, value)
            if root is not None and meta["popular"] == "yes":
                _nest(root.popular, name, plain(value))
        properties[f.name] = prop
        if meta["automl_enabled"] == "TRUE" and meta.get("automl_default", True):
            enabled.append(name)
        elif meta["automl_enabled"] == "FALSE":
            disabled.append(name)
        if meta["popular"] == "yes":
            popular.append(f.name)
        if meta["required"] == "yes" or _has_required(prop):
            required.append(f.name)
    if root is not None:
        root.automl_default_parameters.extend(enabled)
        root.automl_disabled_parameters.extend(disabled)
    return properties, enabled, disabled, popular, required


def collection_property(
    meta: dict[str, Any], value: Any, cls: type, path: str, root: RootLists | None
) -> dict[str, Any]:
    """The schema property of a nested section.

    An optional section whose value is ``None`` still gets its properties and default (from
    ``cls()``), but its descendants stay out of the experiment-wide lists, as in TAO, where
    such a section contributes nothing to them.
    """
    instance = value if value is not None else cls()
    props, enabled, disabled, popular, required = section_properties(instance, path, root)
    prop = _common(meta)
    prop["default"] = plain(instance)
    prop["properties"] = props
    if enabled:
        prop["automl_default_parameters"] = enabled
    if disabled:
        prop["automl_disabled_parameters"] = disabled
    if popular:
        prop["popular"] = popular
    if required:
        prop["required"] = required
    return prop


def _nest(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value
