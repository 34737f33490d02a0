"""Rules one field alone cannot express: cross-field consistency and the files an action reads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model.config.defaults import default_of
from model.config.durations import parse_time_budget
from model.errors import ConfigError
from model.spec.overrides import split_key
from model.spec.tao_schema import MISSING

__all__ = ["ARCHIVE_SUFFIXES", "cross_field_problems", "is_url", "model_problems", "path_problems"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_TRAINING_ACTIONS = ("train", "distill")


def _get(spec: Mapping[str, Any], key: str, default: Any = None) -> Any:
    node: Any = spec
    for part in split_key(key):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return default
        elif not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def model_problems(model: Mapping[str, Any], prefix: str, num_classes: Any) -> list[str]:
    problems: list[str] = []
    levels = model.get("num_feature_levels")
    for name in ("return_interm_indices", "feat_strides", "feat_channels"):
        value = model.get(name)
        if _is_int(levels) and isinstance(value, list) and len(value) != levels:
            problems.append(
                f"{prefix}.{name}: has {len(value)} entries {value} but {prefix}.num_feature_levels is {levels}; "
                f"give one entry per feature level or change num_feature_levels"
            )
    enc_idx = model.get("use_encoder_idx")
    if _is_int(levels) and isinstance(enc_idx, list):
        bad = [i for i in enc_idx if not _is_int(i) or not 0 <= i < levels]
        if bad:
            problems.append(
                f"{prefix}.use_encoder_idx: {bad} out of range; indices must be in 0..{levels - 1} "
                f"({prefix}.num_feature_levels is {levels})"
            )
    queries, select = model.get("num_queries"), model.get("num_select")
    if _is_int(queries) and _is_int(select) and select > queries:
        problems.append(
            f"{prefix}.num_select: {select} is larger than {prefix}.num_queries ({queries}); "
            f"set num_select <= num_queries"
        )
    hidden, heads = model.get("hidden_dim"), model.get("nheads")
    if _is_int(hidden) and _is_int(heads) and heads > 0 and hidden % heads:
        problems.append(f"{prefix}.hidden_dim: {hidden} is not divisible by {prefix}.nheads ({heads})")
    dec, eval_idx = model.get("dec_layers"), model.get("eval_idx")
    if _is_int(dec) and _is_int(eval_idx) and eval_idx >= dec:
        problems.append(f"{prefix}.eval_idx: {eval_idx} must be -1 or < {prefix}.dec_layers ({dec})")
    del num_classes
    return problems


def cross_field_problems(spec: Mapping[str, Any], action: str) -> list[str]:
    problems: list[str] = []
    dataset = spec.get("dataset") if isinstance(spec.get("dataset"), Mapping) else {}
    num_classes = dataset.get("num_classes")
    if isinstance(spec.get("model"), Mapping):
        problems += model_problems(spec["model"], "model", num_classes)
    teacher = _get(spec, "distill.teacher")
    if action == "distill" and isinstance(teacher, Mapping):
        problems += model_problems(teacher, "distill.teacher", num_classes)
    ids = dataset.get("eval_class_ids")
    if _is_int(num_classes) and isinstance(ids, list):
        bad = [i for i in ids if _is_int(i) and not 0 <= i < num_classes]
        if bad:
            problems.append(
                f"dataset.eval_class_ids: {bad} not below dataset.num_classes ({num_classes}); category ids "
                f"must be < num_classes (num_classes = largest category id + 1)"
            )
    aug = dataset.get("augmentation") if isinstance(dataset.get("augmentation"), Mapping) else {}
    for name in ("train_spatial_size", "eval_spatial_size"):
        size = aug.get(name)
        if isinstance(size, list) and (
            len(size) != 2 or not all(_is_int(v) and v > 0 and v % 32 == 0 for v in size)
        ):
            problems.append(
                f"dataset.augmentation.{name}: got {size}; expected [height, width], both positive multiples of 32"
            )
    if action in _TRAINING_ACTIONS and isinstance(spec.get("train"), Mapping):
        train = spec["train"]
        try:
            parse_time_budget(train.get("time_budget"))
        except ConfigError as error:
            problems.append(str(error))
        epochs = train.get("num_epochs")
        if _is_int(epochs):
            val = train.get("validation_interval")
            if _is_int(val) and val > epochs:
                problems.append(
                    f"train.validation_interval: {val} is larger than train.num_epochs ({epochs}); "
                    f"no validation would run; set it <= num_epochs"
                )
            ckpt = train.get("checkpoint_interval")
            by_epoch = (
                train.get("checkpoint_interval_unit", default_of("train.checkpoint_interval_unit")) == "epoch"
            )
            if by_epoch and _is_int(ckpt) and ckpt > epochs:
                problems.append(
                    f"train.checkpoint_interval: {ckpt} is larger than train.num_epochs ({epochs}); "
                    f"no checkpoint would be saved; set it <= num_epochs"
                )
    from model.spec.quantize_rules import quantize_problems

    problems += quantize_problems(spec, action)
    from model.spec.distill_rules import distill_problems

    problems += distill_problems(spec, action)
    return problems


def _expand(spec: Any, key: str) -> list[tuple[str, Any]]:
    """``a.b[0].c`` names every element of the list ``a.b``: yields (concrete key, value) pairs."""
    match = re.match(r"^(.*?)\[0\](.*)$", key)
    if not match:
        value = _get(spec, key) if isinstance(spec, Mapping) else None
        if isinstance(value, list):
            return [(f"{key}[{i}]", v) for i, v in enumerate(value)] or [(key, "")]
        return [(key, value)]
    head, tail = match.groups()
    items = _get(spec, head) if isinstance(spec, Mapping) else None
    if not isinstance(items, list) or not items:
        return [(f"{head}[0]{tail}", "")]
    pairs: list[tuple[str, Any]] = []
    for i, item in enumerate(items):
        if not tail:
            pairs.append((f"{head}[{i}]", item))
            continue
        for sub_key, value in _expand(item, tail.lstrip(".")):
            pairs.append((f"{head}[{i}].{sub_key}", value))
    return pairs


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == MISSING


def is_url(value: str) -> bool:
    return "://" in value


def path_problems(
    spec: Mapping[str, Any], action: str, inputs: Mapping[str, Mapping[str, Any]], cwd: Path
) -> list[str]:
    problems: list[str] = []
    engine = _get(spec, f"{action}.trt_engine")
    for key, info in inputs.items():
        kind = info.get("type", "file")
        optional = bool(info.get("optional"))
        if key == f"{action}.checkpoint" and not _blank(engine):
            continue  # a deployed model (TensorRT engine or ONNX file) replaces the checkpoint
        for concrete, value in _expand(spec, key):
            if _blank(value):
                if not optional:
                    what = "a folder or an images.tar.gz archive" if kind == "folder" else "a file"
                    problems.append(
                        f"{concrete}: required by `rtdetr {action}` but not set; give the path of {what}"
                    )
                continue
            if not isinstance(value, str):
                continue  # the schema check reports the wrong type
            if is_url(value):
                continue  # fetched at run time
            path = Path(value) if Path(value).is_absolute() else cwd / value
            if kind == "folder":
                ok = path.is_dir() or (path.is_file() and value.endswith(ARCHIVE_SUFFIXES))
                what = "a folder or a .tar.gz archive"
            else:
                ok = path.is_file()
                what = "a file"
            if not ok:
                state = "is not " + what if path.exists() else "does not exist"
                problems.append(
                    f"{concrete}: {value!r} {state}; fix the path (relative paths start at {cwd})"
                )
    if action in ("evaluate", "inference") and _blank(engine) and _blank(_get(spec, f"{action}.checkpoint")):
        problems.append(
            f"{action}.checkpoint: required by `rtdetr {action}` but not set; give the trained checkpoint (.pth), "
            f"or a deployed model in {action}.trt_engine (.engine or .onnx)"
        )
    return problems
