"""``references/skill_info.yaml``: the actions' inputs, the shorthand keys and the parent mappings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml

from model.errors import ModelError
from model.paths import references_dir

__all__ = ["action_inputs", "shorthand_keys", "skill_info"]


@lru_cache(maxsize=1)
def skill_info() -> dict[str, Any]:
    path = references_dir() / "skill_info.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a mapping")
    return data


def shorthand_keys() -> dict[str, str]:
    return dict(skill_info().get("spec_shorthand_keys") or {})


def action_inputs(action: str) -> dict[str, dict[str, Any]]:
    """``{dotted key: {"type": "file"|"folder", "optional": bool}}`` for one action."""
    actions = skill_info().get("actions") or {}
    entry = actions.get(action) or {}
    return {k: dict(v or {}) for k, v in (entry.get("inputs") or {}).items()}
