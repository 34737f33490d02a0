"""A latency sweep searches the architecture (``automl.space.architecture``): the keys latency
depends on join the default space, within the schema, and every configuration sampled from it
builds and runs; a single-objective sweep's space is unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from automl.commands.sweep_inputs import make_space
from automl.errors import SettingError
from automl.launch.trial_spec import spec_for_params
from automl.settings.tao_settings import parse_settings
from automl.space.architecture import INPUT_SIZE, apply_architecture
from automl.space.sampling import sample_params
from tests.conftest import ROOT, tiny_spec

SCHEMA = ROOT / "schemas" / "train.schema.json"
ARCHITECTURE = {
    "model.backbone",
    "model.hidden_dim",
    "model.expansion",
    "model.depth_mult",
    "model.enc_layers",
    "model.dec_layers",
    "model.num_queries",
    "model.num_select",
    INPUT_SIZE,
}


def spec(tmp_path: Path) -> dict:
    return tiny_spec(tmp_path / "data", tmp_path / "out")


def test_a_latency_sweep_adds_the_architecture_and_a_plain_one_does_not(tmp_path: Path) -> None:
    base = spec(tmp_path)
    plain = make_space(SCHEMA, base, parse_settings({}), {})
    assert INPUT_SIZE not in plain.names and "model.hidden_dim" not in plain.names
    for setting in ({"objectives": "val_mAP50,latency_ms"}, {"max_latency_ms": 5}):
        space = make_space(SCHEMA, base, parse_settings(setting), {})
        assert ARCHITECTURE <= set(space.names), set(space.names)
        assert set(plain.names) <= set(space.names)  # the training parameters stay searched
        size = space.get(INPUT_SIZE)
        # [v/2, 2v] would start at 32 px, whose 21 feature positions cannot hold 40 queries
        assert size is not None and (size.low, size.high, size.base) == (64, 128, 32) and size.default == 64
        assert "smaller has fewer positions than 40 queries" in size.note
        hidden = space.get("model.hidden_dim")
        assert hidden is not None and hidden.choices == (32, 64)  # multiples of 32 in [v/2, 2v]
        assert set(space.get("model.backbone").choices) == {"resnet_18", "resnet_34", "efficientvit_b0"}
    # the user's list is exact: nothing is added to it
    listed = parse_settings(
        {"objectives": "val_mAP50,latency_ms", "automl_hyperparameters": "[train.optim.lr]"}
    )
    assert make_space(SCHEMA, base, listed, {}).names == ["train.optim.lr"]
    sized = parse_settings({"automl_hyperparameters": f"[train.optim.lr,{INPUT_SIZE}]"})
    assert make_space(SCHEMA, base, sized, {}).names == ["train.optim.lr", INPUT_SIZE]


def test_input_size_sets_every_size_key_and_hidden_dim_carries_the_tied_encoder_width(tmp_path: Path) -> None:
    base = spec(tmp_path)
    base["dataset"]["augmentation"]["multi_scales"] = [48, 64, 80]
    out, rest = apply_architecture(base, {INPUT_SIZE: 128, "model.hidden_dim": 64, "train.optim.lr": 1e-3})
    augmentation = out["dataset"]["augmentation"]
    assert augmentation["train_spatial_size"] == [128, 128] == augmentation["eval_spatial_size"]
    assert augmentation["multi_scales"] == [96, 128, 160]  # scaled by 2, on the 32 grid
    assert out["model"]["feat_channels"] == [64, 64, 64]  # TAO's rule: [hidden_dim] * levels
    assert rest == {"model.hidden_dim": 64, "train.optim.lr": 1e-3}
    trial = spec_for_params(base, {INPUT_SIZE: 96, "model.hidden_dim": 64}, 2, True)
    assert trial["dataset"]["augmentation"]["eval_spatial_size"] == [96, 96]
    assert INPUT_SIZE not in trial and trial["model"]["hidden_dim"] == 64
    untied = spec(tmp_path)
    untied["model"]["feat_channels"] = [48, 48, 48]  # the spec's own encoder width stays
    assert apply_architecture(untied, {"model.hidden_dim": 64})[0]["model"]["feat_channels"] == [48, 48, 48]


def test_every_sampled_architecture_builds_and_runs_at_its_input_size(tmp_path: Path) -> None:
    from model.network.rtdetr import build_model
    from model.spec import resolve_spec
    from tests.conftest import write_spec

    base = spec(tmp_path)
    space = make_space(SCHEMA, base, parse_settings({"objectives": "val_mAP50,latency_ms"}), {})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for number in range(8):
        trial = study.ask()
        params = sample_params(space, trial)
        study.tell(trial, 0.0)
        seen.add((params["model.backbone"], params[INPUT_SIZE]))
        path = write_spec(tmp_path / f"trial{number}.yaml", spec_for_params(base, params, 1, True))
        resolved = resolve_spec("train", path, [], check_paths=False)  # the model's own checks pass
        size = resolved["dataset"]["augmentation"]["eval_spatial_size"]
        assert size == [params[INPUT_SIZE]] * 2 and size[0] % 32 == 0
        assert resolved["model"]["num_select"] <= resolved["model"]["num_queries"]
        torch.manual_seed(0)
        network = build_model(resolved).eval()
        with torch.no_grad():
            out = network(torch.rand(1, 3, *size))
        assert out["pred_boxes"].shape[1] == resolved["model"]["num_queries"]
    assert len(seen) >= 4  # the draws really vary the network


def test_an_input_size_range_is_checked_before_any_compute(tmp_path: Path) -> None:
    base = spec(tmp_path)
    settings = parse_settings({})
    space = make_space(SCHEMA, base, settings, {INPUT_SIZE: "64:160"})
    size = space.get(INPUT_SIZE)
    assert size is not None and size.grid() == [64, 96, 128, 160]
    refused = {
        "160:64": "low < high",
        "big": "low:high in pixels",
        "8:16": "multiple of 32",
        "32:128": "21 feature positions, fewer than model.num_queries",
    }
    for bad, message in refused.items():
        with pytest.raises(SettingError, match=message):
            make_space(SCHEMA, base, settings, {INPUT_SIZE: bad})
    base["dataset"]["augmentation"]["eval_spatial_size"] = [64, 96]
    with pytest.raises(SettingError, match="square multiple of 32"):
        make_space(SCHEMA, base, settings, {INPUT_SIZE: "64:128"})
    latency = make_space(SCHEMA, base, parse_settings({"max_latency_ms": 5}), {})
    assert INPUT_SIZE in {e.name for e in latency.excluded}  # said why, not an error


def test_automl_space_shows_the_architecture_of_a_latency_sweep() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "automl.cli", "space", "--setting", "objectives=val_mAP50,latency_ms"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert ARCHITECTURE <= rows
    assert "sets train/eval sizes and multi_scales" in proc.stdout
