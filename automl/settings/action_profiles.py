"""What a sweep of each action runs: ``automl run --action train|distill|quantize``.

An action decides the schema the space comes from (``schemas/<action>.schema.json``), how the spec is
resolved (``rtdetr validate --action <action>``), the command of a trial (``rtdetr <action> -e
<trial spec>``), the status file tailed (``<trial folder>/<action>/status.json``) and the metric:

- ``train`` and ``distill``: ``val_mAP50`` after each validation; multi-fidelity schedulers
  (hyperband, asha) stop poor trials early as they do for training.
- ``quantize``: no epochs, one result per trial: ``test_mAP50``, the *quantized* model's mAP50 on
  the test set (``dataset.val_data_sources`` when there is none) as ``rtdetr quantize`` writes it in
  its final ``status.json`` line (its kpi ``test_mAP50``; ``test_mAP50_before`` is the float model).
  Without epochs there is nothing to stop early: with no ``automl_algorithm`` given the search is TPE
  alone, and an explicit multi-fidelity request (``automl_algorithm=hyperband``, ``fidelity=asha``,
  ...) is a ``SettingError`` before anything runs.

The quantize space is conditional: TAO only searches some backend / mode / algorithm combinations
(torchao with weight_only_ptq + minmax, modelopt.pytorch with static_ptq + max, ...). The quantize
schema lists the rows ``rtdetr quantize`` runs (``x_quantize_combinations``, generated from the
model's combination table); the search samples one whole row (one categorical parameter,
``quantize.combination``), so every trial's combination is allowed by construction. A row sets
``quantize.backend``, ``quantize.mode``, ``quantize.algorithm`` and the weight dtype of every
``quantize.layers`` entry that quantizes weights. ``--param quantize.backend=torchao`` (or any of
those keys, several values comma-separated) keeps the rows with those values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.errors import SettingError
from automl.space.params import SearchParam, SearchSpace
from automl.spec import get_dotted

__all__ = [
    "ACTIONS",
    "COMBINATION",
    "ActionProfile",
    "action_profile",
    "check_action_settings",
    "quantize_space",
    "setting_defaults",
]

COMBINATION = "quantize.combination"
ROW_SEPARATOR = " / "
LAYER_DTYPE = "quantize.layers[*].weights.dtype"


@dataclass(frozen=True)
class ActionProfile:
    action: str
    metric: str
    per_epoch: bool  # reports a value after each validation (multi-fidelity is possible)
    metric_description: str

    def schema_file(self, root: Path | None = None) -> Path:
        if root is None:  # the installed project's schemas/
            from automl.project_files import schema_file

            return schema_file(self.action)
        return root / "schemas" / f"{self.action}.schema.json"


ACTIONS: dict[str, ActionProfile] = {
    "train": ActionProfile("train", "val_mAP50", True, "validation mAP50 after each epoch"),
    "distill": ActionProfile("distill", "val_mAP50", True, "the student's validation mAP50 after each epoch"),
    "quantize": ActionProfile(
        "quantize",
        "test_mAP50",
        False,
        "the quantized model's mAP50 on the test set (rtdetr quantize's kpi test_mAP50)",
    ),
}


def action_profile(action: str | None) -> ActionProfile:
    profile = ACTIONS.get(action or "train")
    if profile is None:
        raise SettingError(f"--action: got {action!r}; a sweep runs one of {', '.join(ACTIONS)}")
    return profile


def setting_defaults(pairs: dict[str, Any], action: str | None) -> dict[str, Any]:
    """The settings with the action's defaults added: its metric, and no fidelity schedule for an
    action without epochs (unless the user chose an algorithm, checked by ``check_action_settings``)."""
    profile = action_profile(action)
    out = dict(pairs)
    if profile.action != "train" and "metric" not in out:
        out["metric"] = profile.metric
    if not profile.per_epoch and not {"automl_algorithm", "sampler", "fidelity"} & out.keys():
        out["automl_algorithm"] = "tpe"  # TPE alone: the default hyperband needs epochs
    return out


def check_action_settings(settings: Any, action: str | None) -> None:
    """Refuse what the action cannot do, before any compute starts."""
    profile = action_profile(action)
    if not profile.per_epoch and settings.fidelity != "none":
        raise SettingError(
            f"automl_algorithm: {settings.algorithm_name!r} (fidelity {settings.fidelity!r}) stops trials "
            f"early by their epochs, but a {profile.action} trial has no epochs (one {profile.metric} per "
            "trial); use automl_algorithm=tpe, bayesian or random, or leave automl_algorithm out"
        )
    if profile.action != "train" and settings.backend == "ray":
        raise SettingError(
            f"backend: 'ray' runs train sweeps only; use backend=optuna for --action {profile.action}"
        )


# --- the quantize space ---------------------------------------------------------------------------
def _layer_dtypes(spec: Mapping[str, Any]) -> list[str]:
    layers = get_dotted(spec, "quantize.layers") or []
    return [
        str(layer["weights"]["dtype"])
        for layer in layers
        if isinstance(layer, Mapping)
        and isinstance(layer.get("weights"), Mapping)
        and layer["weights"].get("dtype")
    ]


def _wanted(value: Any) -> set[str]:
    if isinstance(value, Mapping):
        value = value.get("valid_options", value.get("options"))
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Sequence) or not value:
        raise SettingError(f"expected one or more values separated by commas, got {value!r}")
    return {str(v).strip() for v in value if str(v).strip()}


def quantize_space(
    schema: Mapping[str, Any],
    spec: Mapping[str, Any],
    *,
    hyperparameters: Sequence[str] | None = None,
    user_ranges: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """One categorical parameter over the schema's allowed quantize rows (see the module docstring)."""
    table = schema.get("x_quantize_combinations")
    if not isinstance(table, Mapping) or not table.get("rows"):
        raise SettingError(
            "the quantize schema has no x_quantize_combinations table; regenerate it with `rtdetr schemas`"
        )
    keys = list(table["keys"])
    rows = [list(map(str, row)) for row in table["rows"]]
    allowed = set(keys) | {COMBINATION}
    unknown = [n for n in [*(hyperparameters or []), *(user_ranges or {})] if n not in allowed]
    if unknown:
        raise SettingError(
            f"{unknown[0]}: a quantize sweep searches the combination of {', '.join(keys)} (rows allowed "
            f"together, from the schema's x_quantize_combinations); restrict it with e.g. "
            f"--param quantize.backend=torchao"
        )
    dtypes = _layer_dtypes(spec)
    if not dtypes:
        raise SettingError(
            "quantize.layers: no entry quantizes weights, so a quantize sweep has nothing to vary; list the "
            "modules and their weight dtype, e.g. quantize.layers=[{module_name: '*', weights: {dtype: int8}}]"
        )
    for name, value in (user_ranges or {}).items():
        index = keys.index(name) if name in keys else None
        try:
            wanted = _wanted(value)
        except SettingError as exc:
            raise SettingError(f"--param {name}: {exc}") from None
        if index is None:  # quantize.combination=row1,row2 spelled with ROW_SEPARATOR
            rows = [r for r in rows if ROW_SEPARATOR.join(r) in wanted]
        else:
            rows = [r for r in rows if r[index] in wanted]
        if not rows:
            raise SettingError(
                f"--param {name}={value}: no allowed quantize combination has that; the allowed rows are "
                + "; ".join(ROW_SEPARATOR.join(r) for r in table["rows"])
            )
    choices = tuple(ROW_SEPARATOR.join(r) for r in rows)
    own = ROW_SEPARATOR.join(
        [str(get_dotted(spec, k)) for k in keys if k != LAYER_DTYPE]
        + ([dtypes[0]] if LAYER_DTYPE in keys else [])
    )
    note = f"rows of ({', '.join(keys)}) allowed together"
    if own not in choices:
        note += f"; the spec's own ({own}) is not searchable here, so the baseline is the first row"
    param = SearchParam(
        name=COMBINATION,
        kind="categorical",
        default=own if own in choices else choices[0],
        scale="choice",
        choices=choices,
        note=note,
    )
    return SearchSpace(params=[param], excluded=[])


def expand_combination(value: str, keys: Sequence[str] | None = None) -> dict[str, str]:
    """``"torchao / weight_only_ptq / minmax / int8"`` -> the spec keys it sets."""
    keys = list(keys or ["quantize.backend", "quantize.mode", "quantize.algorithm", LAYER_DTYPE])
    parts = str(value).split(ROW_SEPARATOR)
    if len(parts) != len(keys):
        raise SettingError(f"{COMBINATION}: {value!r} is not a row of {', '.join(keys)}")
    return dict(zip(keys, parts))


def apply_combination(
    spec: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``spec`` with a sampled ``quantize.combination`` row set, and the other params left to apply."""
    import copy

    out, rest = copy.deepcopy(dict(spec)), {k: v for k, v in params.items() if k != COMBINATION}
    if COMBINATION not in params:
        return out, rest
    section = out.setdefault("quantize", {})
    for key, value in expand_combination(params[COMBINATION]).items():
        if key == LAYER_DTYPE:
            for layer in section.get("layers") or []:
                if (
                    isinstance(layer, dict)
                    and isinstance(layer.get("weights"), dict)
                    and layer["weights"].get("dtype")
                ):
                    layer["weights"]["dtype"] = value
        else:
            section[key.split(".", 1)[1]] = value
    return out, rest
