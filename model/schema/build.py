"""TAO-format schemas, manifest and spec templates for every RT-DETR action.

``build_schema(action)`` is what goes into ``schemas/<action>.schema.json``: the properties of
the whole experiment filtered the way TAO's ``filter_schema`` does (``train``, ``distill``,
``quantize``, the action itself and every non-action key), the full ``default`` spec, the
experiment-wide ``automl_default_parameters``, ``automl_disabled_parameters`` and ``popular``,
the top-level sections holding ``required`` keys, and ``x_tao_schema``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from model.config import ExperimentConfig
from model.errors import SpecError
from model.schema.convert import RootLists, plain, section_properties

__all__ = [
    "ACTIONS",
    "NETWORK",
    "SCHEMA_SOURCE",
    "SCHEMA_VERSION",
    "build_manifest",
    "build_schema",
    "quantize_search_rows",
    "spec_template",
]

ACTIONS: tuple[str, ...] = (
    "train",
    "evaluate",
    "inference",
    "export",
    "gen_trt_engine",
    "quantize",
    "distill",
)
"""Every action with a schema, a manifest entry and a spec template."""

NETWORK = "rtdetr"
SCHEMA_VERSION = 1
SCHEMA_SOURCE = "rtdetr-automl model.config dataclasses"
_ALWAYS_KEPT = ("train", "distill", "quantize")


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise SpecError(f"unknown action {action!r}; choose one of: {', '.join(ACTIONS)}")


def _kept(key: str, action: str) -> bool:
    return key not in ACTIONS or key in _ALWAYS_KEPT or key == action


def _experiment() -> tuple[dict[str, Any], list[str], RootLists]:
    root = RootLists()
    props, _enabled, _disabled, _popular, required = section_properties(ExperimentConfig(), "", root)
    return props, required, root


def _default_spec(action: str) -> dict[str, Any]:
    """The default spec of ``action`` in section order; the optional ``distill`` section only for distill."""
    spec: dict[str, Any] = {}
    experiment = ExperimentConfig()
    for f in dataclasses.fields(experiment):
        if not _kept(f.name, action):
            continue
        value = getattr(experiment, f.name)
        if value is None and f.name == action:
            value = f.metadata["dataclass"]()
        if value is not None:
            spec[f.name] = plain(value)
    return spec


def build_schema(action: str) -> dict[str, Any]:
    """The TAO-format schema of ``action``, as written to ``schemas/<action>.schema.json``."""
    _check_action(action)
    props, required, root = _experiment()
    return {
        "automl_default_parameters": sorted(root.automl_default_parameters),
        "automl_disabled_parameters": sorted(root.automl_disabled_parameters),
        "default": _default_spec(action),
        "popular": root.popular,
        "properties": {k: v for k, v in props.items() if _kept(k, action)},
        "required": [k for k in required if _kept(k, action)],
        "type": "object",
        "x_tao_schema": {
            "action": action,
            "core_module": NETWORK,
            "model": NETWORK,
            "network_arch": NETWORK,
            "schema_action": action,
            "schema_version": SCHEMA_VERSION,
            "source": SCHEMA_SOURCE,
        },
        **({"x_quantize_combinations": quantize_search_rows()} if action == "quantize" else {}),
    }


def quantize_search_rows() -> dict[str, Any]:
    """What a search over quantization settings may try (``automl run --action quantize``): one row per
    allowed backend / mode / algorithm / weight dtype that ``rtdetr quantize`` runs, from the table in
    ``model/quantize/combinations.py`` (TAO's searchable combinations), so the orchestrator, which
    reads only the schema, samples a whole row and never an invalid mix."""
    from model.quantize.combinations import COMBINATIONS, search_weight_dtypes, searchable_combinations

    rows = [
        [r["backend"], r["mode"], r["algorithm"], dtype]
        for r in searchable_combinations()
        for dtype in search_weight_dtypes(r["backend"], r["algorithm"])
    ]
    skipped = [
        {"backend": row.backend, "algorithm": algorithm, "reason": row.not_runnable_reason}
        for row in COMBINATIONS
        for algorithm in row.search_algorithms
        if row.runnable_algorithms is not None and algorithm not in row.runnable_algorithms
    ]
    return {
        "keys": [
            "quantize.backend",
            "quantize.mode",
            "quantize.algorithm",
            "quantize.layers[*].weights.dtype",
        ],
        "rows": rows,
        "not_searched": skipped,
    }


def spec_template(action: str) -> dict[str, Any]:
    """The spec template of ``action`` (``references/spec_template_<action>.yaml``): the schema's default."""
    _check_action(action)
    return _default_spec(action)


def build_manifest() -> dict[str, Any]:
    """``schemas/manifest.json`` in TAO's layout, one entry per action."""
    _props, _required, root = _experiment()
    actions = {}
    for action in sorted(ACTIONS):
        actions[action] = {
            "automl_default_parameters": sorted(root.automl_default_parameters),
            "automl_disabled_parameters": sorted(root.automl_disabled_parameters),
            "core_module": NETWORK,
            "path": f"schemas/{action}.schema.json",
            "popular": root.popular,
            "schema_action": action,
            "spec_template": f"references/spec_template_{action}.yaml",
        }
    return {
        "actions": actions,
        "automl_enabled": True,
        "failures": {},
        "model": NETWORK,
        "network_arch": NETWORK,
        "schema_version": SCHEMA_VERSION,
    }
