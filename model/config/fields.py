"""Field helpers that attach TAO's schema metadata to dataclass fields.

Every spec key is declared once, as a dataclass field built by one of these helpers. The
helper stores the key's default and, in ``field.metadata``, the same metadata keys that
NVIDIA TAO's field helpers store (``display_name``, ``value_type``, ``description``,
``default_value``, ``examples``, ``valid_min``, ``valid_max``, ``valid_options``,
``option_weights``, ``required``, ``popular``, ``regex``, ``automl_enabled``, ``math_cond``,
``parent_param``, ``depends_on``), with TAO's spellings of the values:

- ``valid_options`` is a comma-joined string; a string field with options is ``categorical``
  and an int field with options is ``ordered_int``.
- ``automl_enabled`` is ``"TRUE"``/``"FALSE"``; it defaults to ``""`` for scalars and to
  ``"FALSE"`` for list, dict and dataclass fields.
- ``popular``/``required`` are ``"yes"`` or ``""``; ``parent_param`` is ``"TRUE"`` or ``""``;
  ``valid_max``/``valid_min`` may be ``"inf"``.

``model.schema`` turns these fields into TAO-format JSON schemas.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

__all__ = [
    "INF",
    "MISSING",
    "Bound",
    "bool_field",
    "dataclass_field",
    "dict_field",
    "float_field",
    "int_field",
    "list_field",
    "opt_in",
    "str_field",
]

MISSING = "???"
"""TAO's (OmegaConf's) marker for a value the user must set; it appears verbatim in templates."""

INF = "inf"
"""An unbounded ``valid_min``/``valid_max``, written ``Infinity`` in the generated JSON."""

Bound = int | float | str | None


def _flag(value: bool, true: str) -> str:
    return true if value else ""


def _automl(value: bool | None, container: bool) -> str:
    if value is None:
        return "FALSE" if container else ""
    return "TRUE" if value else "FALSE"


def _check_bound(name: str, bound: Bound) -> None:
    if isinstance(bound, str) and bound not in (INF, "-inf"):
        raise ValueError(f"{name} must be a number or 'inf', got {bound!r}")


def _metadata(
    *,
    value_type: str,
    default: Any,
    display_name: str,
    description: str,
    examples: Sequence[Any] | None = None,
    valid_min: Bound = None,
    valid_max: Bound = None,
    options: Sequence[Any] | None = None,
    option_weights: Sequence[float] | None = None,
    required: bool = False,
    popular: bool = False,
    regex: str = "",
    automl_enabled: str = "",
    math_cond: str = "",
    parent_param: bool = False,
    depends_on: str = "",
) -> dict[str, Any]:
    _check_bound("valid_min", valid_min)
    _check_bound("valid_max", valid_max)
    if option_weights is not None:
        if options is None or len(option_weights) != len(options):
            raise ValueError(
                f"option_weights {list(option_weights)} must give one weight per option in {options}"
            )
    return {
        "display_name": display_name,
        "value_type": value_type,
        "description": description,
        "default_value": default,
        "examples": list(examples) if examples else [],
        "valid_min": valid_min,
        "valid_max": valid_max,
        "valid_options": ",".join(str(o) for o in options) if options else "",
        "option_weights": list(option_weights) if option_weights is not None else None,
        "required": _flag(required, "yes"),
        "popular": _flag(popular, "yes"),
        "regex": regex,
        "automl_enabled": automl_enabled,
        "math_cond": math_cond,
        "parent_param": _flag(parent_param, "TRUE"),
        "depends_on": depends_on,
    }


def _scalar(value: Any, metadata: dict[str, Any]) -> Any:
    return dataclasses.field(default=value, metadata=metadata)


def str_field(
    value: str | None,
    *,
    display_name: str = "",
    description: str = "",
    options: Sequence[str] | None = None,
    option_weights: Sequence[float] | None = None,
    regex: str = "",
    examples: Sequence[str] | None = None,
    required: bool = False,
    popular: bool = False,
    automl: bool | None = None,
    math_cond: str = "",
    parent_param: bool = False,
    depends_on: str = "",
) -> Any:
    """A string key; with ``options`` it is TAO's ``categorical`` type."""
    meta = _metadata(
        value_type="categorical" if options else "string",
        default=value,
        display_name=display_name,
        description=description,
        examples=examples,
        options=options,
        option_weights=option_weights,
        regex=regex,
        required=required,
        popular=popular,
        automl_enabled=_automl(automl, container=False),
        math_cond=math_cond,
        parent_param=parent_param,
        depends_on=depends_on,
    )
    return _scalar(value, meta)


def int_field(
    value: int | None,
    *,
    display_name: str = "",
    description: str = "",
    valid_min: Bound = None,
    valid_max: Bound = None,
    options: Sequence[int] | None = None,
    option_weights: Sequence[float] | None = None,
    examples: Sequence[int] | None = None,
    required: bool = False,
    popular: bool = False,
    automl: bool | None = None,
    math_cond: str = "",
    parent_param: bool = False,
    depends_on: str = "",
) -> Any:
    """An integer key; with ``options`` it is TAO's ``ordered_int`` type."""
    meta = _metadata(
        value_type="ordered_int" if options else "int",
        default=value,
        display_name=display_name,
        description=description,
        examples=examples,
        valid_min=valid_min,
        valid_max=valid_max,
        options=options,
        option_weights=option_weights,
        required=required,
        popular=popular,
        automl_enabled=_automl(automl, container=False),
        math_cond=math_cond,
        parent_param=parent_param,
        depends_on=depends_on,
    )
    return _scalar(value, meta)


def float_field(
    value: float | None,
    *,
    display_name: str = "",
    description: str = "",
    valid_min: Bound = None,
    valid_max: Bound = None,
    examples: Sequence[float] | None = None,
    required: bool = False,
    popular: bool = False,
    automl: bool | None = None,
    math_cond: str = "",
    parent_param: bool = False,
    depends_on: str = "",
) -> Any:
    """A floating point key."""
    meta = _metadata(
        value_type="float",
        default=value,
        display_name=display_name,
        description=description,
        examples=examples,
        valid_min=valid_min,
        valid_max=valid_max,
        required=required,
        popular=popular,
        automl_enabled=_automl(automl, container=False),
        math_cond=math_cond,
        parent_param=parent_param,
        depends_on=depends_on,
    )
    return _scalar(value, meta)


def bool_field(
    value: bool,
    *,
    display_name: str = "",
    description: str = "",
    required: bool = False,
    popular: bool = False,
    automl: bool | None = None,
) -> Any:
    """A boolean key."""
    meta = _metadata(
        value_type="bool",
        default=value,
        display_name=display_name,
        description=description,
        required=required,
        popular=popular,
        automl_enabled=_automl(automl, container=False),
    )
    return _scalar(value, meta)


def list_field(
    value: list[Any] | None,
    *,
    display_name: str = "",
    description: str = "",
    item_type: type | None = None,
    examples: Sequence[Any] | None = None,
    required: bool = False,
    popular: bool = False,
    automl: bool = False,
) -> Any:
    """A list key (TAO's ``list``). ``item_type`` names the dataclass of each element, if any.

    The default list is deep-copied for every instance, so instances never share it.
    """
    meta = _metadata(
        value_type="list",
        default=value,
        display_name=display_name,
        description=description,
        examples=examples,
        required=required,
        popular=popular,
        automl_enabled=_automl(automl, container=True),
    )
    meta["item_type"] = item_type
    if value is None:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(default_factory=lambda: copy.deepcopy(value), metadata=meta)


def dict_field(
    value: dict[str, Any] | None,
    *,
    display_name: str = "",
    description: str = "",
    required: bool = False,
    popular: bool = False,
) -> Any:
    """A free-form mapping key (TAO's ``collection`` without declared properties)."""
    meta = _metadata(
        value_type="collection",
        default=value,
        display_name=display_name,
        description=description,
        required=required,
        popular=popular,
        automl_enabled="FALSE",
    )
    if value is None:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(default_factory=lambda: copy.deepcopy(value), metadata=meta)


def dataclass_field(
    cls: type,
    *,
    display_name: str = "",
    description: str = "",
    optional: bool = False,
) -> Any:
    """A nested section (TAO's ``collection`` with properties).

    With ``optional=True`` the default is ``None`` (the section is absent unless a spec sets
    it), but its properties are still declared by ``cls``.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"dataclass_field needs a dataclass, got {cls!r}")
    meta = _metadata(
        value_type="collection",
        default=None,
        display_name=display_name,
        description=description,
        automl_enabled="FALSE",
    )
    meta["dataclass"] = cls
    if optional:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(default_factory=cls, metadata=meta)


def opt_in(spec_field: Any) -> Any:
    """Mark a searchable (``automl=True``) key of ours as opt-in: ``automl_enabled`` stays true, but the key
    is left out of ``automl_default_parameters``, so a sweep searches TAO's default space unless the
    user names the key in ``automl_hyperparameters``."""
    if spec_field.metadata.get("automl_enabled") != "TRUE":
        raise ValueError("opt_in is for keys declared with automl=True")
    return dataclasses.field(
        default=spec_field.default, metadata={**spec_field.metadata, "automl_default": False}
    )
