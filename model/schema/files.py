"""Writing (or checking) the generated files: schemas, manifest and spec templates.

JSON is written the way TAO's files are: ``indent=2``, sorted keys, a final newline, and
``Infinity`` for unbounded limits (Python's ``json`` reads it back). Templates are YAML in
section order, like TAO's ``references/spec_template_<action>.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from model.schema.build import ACTIONS, build_manifest, build_schema, spec_template

__all__ = ["dump_json", "dump_yaml", "generate", "generated_files"]


def dump_json(data: Any) -> str:
    """TAO's JSON layout."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def dump_yaml(data: Any) -> str:
    """TAO's template layout: block style, keys in section order."""
    return yaml.safe_dump(data, sort_keys=False)


def generated_files() -> dict[str, str]:
    """Every generated file: path relative to the repository root -> its content."""
    files = {f"schemas/{a}.schema.json": dump_json(build_schema(a)) for a in ACTIONS}
    files["schemas/manifest.json"] = dump_json(build_manifest())
    for action in ACTIONS:
        files[f"references/spec_template_{action}.yaml"] = dump_yaml(spec_template(action))
    return files


def generate(root: Path, check: bool = False) -> list[str]:
    """Write the generated files under ``root``, or with ``check`` only compare them.

    Returns the relative paths whose content changed (written), or with ``check`` the paths
    that are stale or missing. Files already up to date are left untouched.
    """
    changed = []
    for rel, content in generated_files().items():
        path = Path(root) / rel
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == content:
            continue
        changed.append(rel)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    return changed
