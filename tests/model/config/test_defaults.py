"""Run-time defaults come from ``model.config`` alone: every reader of a spec section takes a missing
key's default from the dataclasses, and no module repeats a default as a literal."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from model.config import (
    CalibrationConfig,
    CuDNNConfig,
    ExperimentConfig,
    RTAugmentationConfig,
    RTDatasetConfig,
    RTDistillationConfig,
    RTEMAConfig,
    RTEvalExpConfig,
    RTExportExpConfig,
    RTGenTrtEngineExpConfig,
    RTInferenceExpConfig,
    RTModelConfig,
    RTOptimConfig,
    RTTrainExpConfig,
    RTTrtConfig,
    default_of,
    section_defaults,
    spec_section,
    with_defaults,
)

MODEL_PACKAGE = Path(__file__).resolve().parents[3] / "model"

SECTIONS = {
    "train": RTTrainExpConfig,
    "train.optim": RTOptimConfig,
    "train.ema": RTEMAConfig,
    "train.cudnn": CuDNNConfig,
    "model": RTModelConfig,
    "dataset": RTDatasetConfig,
    "dataset.augmentation": RTAugmentationConfig,
    "evaluate": RTEvalExpConfig,
    "inference": RTInferenceExpConfig,
    "export": RTExportExpConfig,
    "gen_trt_engine": RTGenTrtEngineExpConfig,
    "gen_trt_engine.tensorrt": RTTrtConfig,
    "gen_trt_engine.tensorrt.calibration": CalibrationConfig,
    "distill": RTDistillationConfig,
    "distill.teacher": RTModelConfig,
}


@pytest.mark.parametrize("path", sorted(SECTIONS))
def test_a_missing_section_takes_the_dataclass_defaults(path):
    expected = dataclasses.asdict(SECTIONS[path]())
    assert section_defaults(path) == expected
    assert spec_section({}, path) == expected
    assert spec_section(None, path) == expected


def test_given_values_win_and_nested_sections_merge_key_by_key():
    spec = {"train": {"seed": 7, "optim": {"lr": 0.5}, "freeze": ["backbone"]}}
    train = spec_section(spec, "train")
    assert train["seed"] == 7 and train["freeze"] == ["backbone"]
    assert train["optim"]["lr"] == 0.5
    assert train["optim"]["lr_backbone"] == RTOptimConfig().lr_backbone
    assert train["num_epochs"] == RTTrainExpConfig().num_epochs
    train["optim"]["lr"] = 1.0  # a copy: neither the spec nor the defaults change
    assert spec["train"]["optim"]["lr"] == 0.5 and section_defaults("train.optim")["lr"] == RTOptimConfig().lr
    assert with_defaults({"dn_number": 0}, "model")["aux_loss"] is RTModelConfig().aux_loss


def test_default_of_names_one_key_and_refuses_unknown_ones():
    assert default_of("train.seed") == RTTrainExpConfig().seed
    assert default_of("dataset.augmentation.eval_spatial_size") == RTAugmentationConfig().eval_spatial_size
    assert default_of("results_dir") == ExperimentConfig().results_dir
    with pytest.raises(KeyError):
        default_of("train.no_such_key")
    with pytest.raises(KeyError):
        section_defaults("train.seed")


def test_the_network_builds_from_the_config_defaults():
    from model.network.arch_settings import (
        DEFAULT_EVAL_SIZE,
        DEFAULT_NUM_CLASSES,
        TAO_MODEL_DEFAULTS,
        ModelSettings,
    )

    assert TAO_MODEL_DEFAULTS == dataclasses.asdict(RTModelConfig())
    assert DEFAULT_NUM_CLASSES == RTDatasetConfig().num_classes
    assert DEFAULT_EVAL_SIZE == RTAugmentationConfig().eval_spatial_size
    settings = ModelSettings.from_spec({"model": {}, "dataset": {}})
    assert settings.model == dataclasses.asdict(RTModelConfig())
    assert settings.num_classes == RTDatasetConfig().num_classes
    assert settings.eval_spatial_size == RTAugmentationConfig().eval_spatial_size
    assert settings.remap_mscoco_category is RTDatasetConfig().remap_mscoco_category


def test_the_optimiser_and_schedule_take_the_config_defaults():
    from model.engine.optim import build_optimizer, build_scheduler

    net = nn.Sequential()
    net.add_module("backbone", nn.Linear(2, 2))
    net.add_module("head", nn.Linear(2, 2))
    optimizer = build_optimizer(net, {})
    groups = {g["name"]: g for g in optimizer.param_groups}
    defaults = RTOptimConfig()
    assert groups["backbone"]["lr"] == defaults.lr_backbone and groups["detector"]["lr"] == defaults.lr
    assert groups["detector"]["weight_decay"] == defaults.weight_decay
    scheduler = build_scheduler(optimizer, {})
    assert defaults.lr_scheduler == "MultiStep" and isinstance(
        scheduler, torch.optim.lr_scheduler.MultiStepLR
    )
    assert sorted(scheduler.milestones) == defaults.lr_steps and scheduler.gamma == defaults.lr_decay


def test_the_action_readers_take_the_config_defaults():
    from model.deploy.trt_engine_plan import batch_profile
    from model.engine import activation_checkpoint
    from model.engine.evaluation import action_batch_size

    assert action_batch_size({}, "evaluate") == RTDatasetConfig().batch_size  # evaluate.batch_size -1
    assert action_batch_size({"inference": {"batch_size": 3}}, "inference") == 3
    trt = RTTrtConfig()
    profile = batch_profile({}, onnx_batch=-1)
    assert (profile.min, profile.opt, profile.max) == (
        trt.min_batch_size,
        trt.opt_batch_size,
        trt.max_batch_size,
    )
    assert activation_checkpoint.wanted({}, world_size=1) is RTTrainExpConfig().activation_checkpoint


def _spec_keys() -> set[str]:
    keys: set[str] = set()
    todo = [ExperimentConfig]
    while todo:
        for f in dataclasses.fields(todo.pop()):
            keys.add(f.name)
            if "dataclass" in f.metadata:
                todo.append(f.metadata["dataclass"])
            if f.metadata.get("item_type"):
                todo.append(f.metadata["item_type"])
    return keys


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is not None
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(
            k is not None and _is_literal(k) and _is_literal(v) for k, v in zip(node.keys, node.values)
        )
    return False


def test_no_module_repeats_a_spec_default_as_a_literal():
    """``section.get("seed", 0)`` beside ``train.seed`` = 1234 in the config is how defaults drift apart;
    every reader goes through ``model.config.defaults`` instead."""
    keys = _spec_keys()
    found = []
    for path in sorted(MODEL_PACKAGE.rglob("*.py")):
        if path.parent.name == "config":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in keys
                and _is_literal(node.args[1])
            ):
                where = path.relative_to(MODEL_PACKAGE.parent)
                found.append(
                    f"{where}:{node.lineno}: .get({node.args[0].value!r}, {ast.unparse(node.args[1])})"
                )
    assert not found, "spec defaults repeated as literals (use model.config.defaults):\n" + "\n".join(found)
