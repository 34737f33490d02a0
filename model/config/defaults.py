"""Run-time defaults, taken from the config dataclasses: no default is written twice.

``resolve_spec`` starts every spec from the action's template (these same defaults), so a resolved
spec already holds every key. Code that reads a section reads it through ``spec_section`` (or
``with_defaults`` for a section it already holds), so a spec that was not resolved (a hand-made
spec, a test's, a checkpoint's stored spec) still takes each missing key's default from here and
never from a literal repeated at the call site.

    spec_section(spec, "train.optim")["lr"]        # the spec's value, else RTOptimConfig().lr
    with_defaults(spec["model"], "model")          # a whole section over RTModelConfig()
    default_of("train.seed")                       # one key's default

Importing this module does not import torch.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from functools import cache
from typing import Any

from model.config.experiment import ExperimentConfig

__all__ = ["default_of", "section_defaults", "spec_section", "with_defaults"]


def _section_class(path: str) -> type:
    """The dataclass of the section at dotted ``path`` ("" is the whole spec)."""
    cls: type = ExperimentConfig
    for name in [p for p in path.split(".") if p]:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        found = fields.get(name)
        if found is None or "dataclass" not in found.metadata:
            raise KeyError(f"{path!r}: {name!r} is not a section of {cls.__name__}")
        cls = found.metadata["dataclass"]
    return cls


@cache
def _defaults(path: str) -> dict[str, Any]:
    return dataclasses.asdict(_section_class(path)())


def section_defaults(path: str) -> dict[str, Any]:
    """A fresh copy of the defaults of the section at ``path`` (``train``, ``train.optim``, ``distill.teacher``)."""
    return copy.deepcopy(_defaults(path))


def _merged(defaults: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = defaults
    for name, value in given.items():
        if isinstance(value, Mapping) and isinstance(out.get(name), dict):
            out[name] = _merged(out[name], value)
        else:
            out[name] = copy.deepcopy(value)
    return out


def with_defaults(values: Mapping[str, Any] | None, path: str) -> dict[str, Any]:
    """``values`` (a spec's section at ``path``, or None) over that section's defaults; nested sections
    are merged key by key, every other value (lists included) replaces the default."""
    return _merged(section_defaults(path), values if isinstance(values, Mapping) else {})


def spec_section(spec: Mapping[str, Any] | None, path: str) -> dict[str, Any]:
    """The section of ``spec`` at dotted ``path``, every key the spec leaves out taking its default."""
    node: Any = spec
    for name in path.split("."):
        node = node.get(name) if isinstance(node, Mapping) else None
    return with_defaults(node, path)


def default_of(key: str) -> Any:
    """The default of one dotted key, e.g. ``train.seed`` or ``dataset.augmentation.eval_spatial_size``."""
    section, _, name = key.rpartition(".")
    defaults = _defaults(section)
    if name not in defaults:
        raise KeyError(f"{key!r} is not a key of the spec")
    return copy.deepcopy(defaults[name])
