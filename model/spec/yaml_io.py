"""Reading spec YAML the way TAO users write it.

Two things differ from plain ``yaml.safe_load``:
- ``1e-4`` is a float (YAML 1.1 wants ``1.0e-4``; TAO specs write ``lr: 1e-4`` everywhere);
- a key written twice in one mapping is an error instead of the last one silently winning.
Errors name the file and the line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from model.errors import SpecError

__all__ = ["SpecLoader", "load_spec_file", "load_yaml_text", "parse_value"]

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats and duplicate-key detection."""

    yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key] + 1}); keep only one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_value(text: str) -> Any:
    """Parse one override value (``key=value``) as YAML: ``5`` -> 5, ``1e-4`` -> 0.0001, ``[1,2]`` -> list."""
    try:
        return yaml.load(text, Loader=SpecLoader)
    except yaml.YAMLError:
        return text


def load_yaml_text(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=SpecLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            f"malformed YAML{where}: {problem}; fix the syntax (indentation, ':' after keys, quotes)",
            source=source,
        ) from None


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Load a spec file and return its top-level mapping, or raise SpecError naming the file."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise SpecError(f"spec file not found: {path}; pass an existing YAML file with -e", source=None)
    if path.is_dir():
        raise SpecError(f"spec path is a folder, not a YAML file: {path}", source=None)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the spec file: {exc}", source=source) from None
    data = load_yaml_text(text, source)
    if data is None:
        raise SpecError(
            "the spec file is empty; expected a mapping of spec sections (dataset, model, train, ...)",
            source=source,
        )
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SpecError(
            f"the spec must be a mapping of sections (dataset:, model:, train:, ...), got a {kind} at the top level",
            source=source,
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise SpecError(f"top-level keys must be names, got {bad!r}", source=source)
    return data
