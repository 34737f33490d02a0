"""Spec loading and validation (no torch): template defaults <- YAML <- overrides <- shorthand keys."""

from __future__ import annotations

from model.spec.overrides import apply_overrides, deep_merge, split_key
from model.spec.resolve import resolve_spec
from model.spec.yaml_io import load_spec_file, parse_value

__all__ = ["apply_overrides", "deep_merge", "load_spec_file", "parse_value", "resolve_spec", "split_key"]
