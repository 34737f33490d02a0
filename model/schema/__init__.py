"""Generate TAO-format schemas, the manifest and spec templates from ``model.config``.

``rtdetr schemas [--check]`` calls ``generate(repo_root, check)``.
"""

from __future__ import annotations

from model.schema.build import ACTIONS, build_manifest, build_schema, spec_template
from model.schema.files import generate

__all__ = ["ACTIONS", "build_manifest", "build_schema", "generate", "spec_template"]
