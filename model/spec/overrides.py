"""Dotted overrides: ``train.optim.lr=1e-4``, ``dataset.train_data_sources[0].image_dir=/data``.

Values are parsed as YAML (``5`` is an int, ``[1,2]`` a list, ``1e-4`` a float). TAO's shorthand keys
from ``skill_info.yaml`` (``num_epochs=5``, ``batch_size=8``, ``learning_rate=1e-3``) are applied last.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from model.spec.yaml_io import parse_value

__all__ = ["apply_overrides", "deep_merge", "dotted", "set_dotted", "split_key"]

_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


def split_key(key: str) -> list[str | int]:
    """``a.b[0].c`` -> ``["a", "b", 0, "c"]``; raises ValueError on a malformed key."""
    parts: list[str | int] = []
    for piece in key.split("."):
        match = _PART.match(piece)
        if not match:
            raise ValueError(piece)
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def dotted(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def deep_merge(base: Any, update: Any) -> Any:
    """Mappings merge key by key; anything else (lists included) is replaced by ``update``."""
    if isinstance(base, Mapping) and isinstance(update, Mapping):
        merged = {k: copy.deepcopy(v) for k, v in base.items()}
        for key, value in update.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(update)


def set_dotted(spec: dict[str, Any], parts: list[str | int], value: Any) -> str | None:
    """Set ``value`` at ``parts`` inside ``spec``; returns a problem message instead of raising."""
    node: Any = spec
    for depth, part in enumerate(parts[:-1]):
        nxt = parts[depth + 1]
        here = dotted(parts[: depth + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                return f"{dotted(parts)}: {dotted(parts[:depth])} is not a list, so [{part}] cannot be used"
            if part > len(node):
                return f"{here}: index {part} is past the end (the list has {len(node)} entries; use 0..{len(node)})"
            if part == len(node):
                node.append({} if isinstance(nxt, str) else [])
            node = node[part]
            continue
        if not isinstance(node, dict):
            return f"{dotted(parts)}: {dotted(parts[:depth]) or 'the spec'} is not a mapping"
        if part not in node or node[part] is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list):
            return f"{dotted(parts)}: {dotted(parts[:-1])} is not a list"
        if last > len(node):
            return f"{dotted(parts)}: index {last} is past the end (the list has {len(node)} entries)"
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
        return None
    if not isinstance(node, dict):
        return f"{dotted(parts)}: {dotted(parts[:-1]) or 'the spec'} is not a mapping"
    node[last] = value
    return None


def apply_overrides(
    spec: dict[str, Any], overrides: Iterable[str], shorthand: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Apply ``key=value`` tokens to a copy of ``spec``; shorthand keys last. Returns (spec, problems)."""
    shorthand = shorthand or {}
    spec = copy.deepcopy(spec)
    problems: list[str] = []
    regular: list[tuple[str, str]] = []
    short: list[tuple[str, str]] = []
    for token in overrides:
        if "=" not in token:
            problems.append(f"override {token!r}: expected key=value, e.g. train.num_epochs=20")
            continue
        key, text = token.split("=", 1)
        key = key.strip().lstrip("+")
        if key in shorthand:
            short.append((shorthand[key], text))
        else:
            regular.append((key, text))
    for key, text in regular + short:
        try:
            parts = split_key(key)
        except ValueError:
            problems.append(f"override {key!r}: not a dotted key; write it like train.optim.lr or a.b[0].c")
            continue
        problem = set_dotted(spec, parts, parse_value(text))
        if problem:
            problems.append(problem)
    return spec, problems
