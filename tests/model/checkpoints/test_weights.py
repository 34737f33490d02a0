"""load_weights / load_backbone_weights on every checkpoint layout users bring."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from model import build_model, load_weights
from model.checkpoints import load_backbone_weights
from model.errors import CheckpointError
from model.network.backbones.presnet import PResNet
from tests.model.official_fixture import official_state_dict, r18_spec

CLASS_HEADS = re.compile(r"(enc_score_head|dec_score_head\.\d+|denoising_class_embed)\.(weight|bias)$")


@pytest.fixture(scope="module")
def official() -> dict[str, torch.Tensor]:
    """The official R18 state_dict (fixture key list and fill rule), computed buffers included."""
    return official_state_dict(build_model(r18_spec()).state_dict())


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(r18_spec())


def _assert_weights_equal(model: torch.nn.Module, official: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    for key in (
        "backbone.conv1.conv1_1.conv.weight",
        "encoder.input_proj.2.norm.running_var",
        "decoder.enc_output.proj.weight",
        "decoder.dec_score_head.2.bias",
    ):
        assert torch.equal(own[key], official[key]), key


def _to_v1_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    v1 = {}
    for key, value in state.items():
        if key.endswith(("anchors", "valid_mask", "num_points_scale")):
            continue  # v1 modules keep these as plain attributes, not in the state_dict
        key = re.sub(r"^(encoder\.input_proj\.\d+\.)conv\.", r"\g<1>0.", key)
        key = re.sub(r"^(encoder\.input_proj\.\d+\.)norm\.", r"\g<1>1.", key)
        key = key.replace("decoder.enc_output.proj.", "decoder.enc_output.0.")
        key = key.replace("decoder.enc_output.norm.", "decoder.enc_output.1.")
        v1[key] = value
    return v1


LAYOUTS = {
    "rtdetrv2_ema_module": (
        lambda sd: {"ema": {"module": sd, "updates": 7}, "model": sd, "last_epoch": 3},
        "ema.module",
    ),
    "model_only": (lambda sd: {"model": sd, "last_epoch": 3}, "model"),
    "bare_state_dict": (lambda sd: sd, "state_dict at top level"),
    "ddp_module_prefix": (lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}}, "model"),
    "lightning_state_dict": (lambda sd: {"state_dict": sd, "epoch": 1}, "state_dict"),
    "ours_with_optimizer": (
        lambda sd: {"model": sd, "ema": {"module": sd}, "optimizer": {"state": {}}, "epoch": 4},
        "ema.module",
    ),
    "v1_from_paddle": (lambda sd: {"ema": {"module": _to_v1_layout(sd)}}, "ema.module"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_checkpoint_layout_loads_completely(
    layout: str, official: dict[str, torch.Tensor], model: torch.nn.Module, tmp_path: Path
) -> None:
    wrap, source = LAYOUTS[layout]
    path = tmp_path / f"{layout}.pth"
    torch.save(wrap(official), path)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    report = load_weights(model, path)
    assert report.source == source
    assert report.missing == [] and report.unexpected == [] and report.skipped == []
    assert set(report.computed) == {
        k for k in official if k.endswith(("anchors", "valid_mask", "num_points_scale"))
    }
    _assert_weights_equal(model, official)
    assert str(path) in report.summary()


def test_other_num_classes_skips_and_reports_the_class_heads(
    official: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    path = tmp_path / "coco80.pth"
    torch.save({"ema": {"module": official}}, path)
    small = build_model(r18_spec(num_classes=3))
    report = load_weights(small, path)
    skipped = {key: (ckpt, own) for key, ckpt, own in report.skipped}
    assert set(skipped) == {k for k in official if CLASS_HEADS.search(k)}
    assert skipped["decoder.enc_score_head.weight"] == ((80, 256), (3, 256))
    assert skipped["decoder.denoising_class_embed.weight"] == ((81, 256), (4, 256))
    assert report.missing == [] and report.unexpected == []
    assert "decoder.enc_score_head.weight [80, 256] vs model [3, 256]" in report.summary()
    assert torch.equal(
        small.state_dict()["decoder.enc_output.proj.weight"], official["decoder.enc_output.proj.weight"]
    )


def test_garbage_file_raises_checkpoint_error_naming_it(tmp_path: Path, model: torch.nn.Module) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load_weights(model, path)


def test_json_file_raises_checkpoint_error_naming_it(tmp_path: Path, model: torch.nn.Module) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"model": {"backbone": "resnet_18"}}))
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load_weights(model, path)


def test_dict_without_tensors_raises_checkpoint_error(tmp_path: Path, model: torch.nn.Module) -> None:
    path = tmp_path / "meta_only.pth"
    torch.save({"epoch": 3, "args": {"lr": 0.1}}, path)
    with pytest.raises(CheckpointError, match="holds no model weights"):
        load_weights(model, path)


def test_missing_file_raises_checkpoint_error(tmp_path: Path, model: torch.nn.Module) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(model, tmp_path / "nope.pth")


def test_checkpoint_of_another_architecture_is_rejected(tmp_path: Path, model: torch.nn.Module) -> None:
    path = tmp_path / "other.pth"
    torch.save({"model": {"features.0.weight": torch.zeros(3, 3)}}, path)
    with pytest.raises(CheckpointError, match="no tensor that fits"):
        load_weights(model, path)


@pytest.mark.parametrize("prefixed", [True, False])
def test_backbone_weights_load_with_or_without_prefix(
    prefixed: bool, official: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    backbone_state = {k: v for k, v in official.items() if k.startswith("backbone.")}
    if not prefixed:
        backbone_state = {k[len("backbone.") :]: v for k, v in backbone_state.items()}
    path = tmp_path / "ResNet18_vd_pretrained.pth"
    torch.save(backbone_state, path)
    backbone = PResNet(18, return_idx=[1, 2, 3])
    report = load_backbone_weights(backbone, path)
    assert report.missing == [] and report.unexpected == [] and report.skipped == []
    assert torch.equal(
        backbone.state_dict()["res_layers.3.blocks.1.branch2b.conv.weight"],
        official["backbone.res_layers.3.blocks.1.branch2b.conv.weight"],
    )


def test_frozen_norm_backbone_ignores_batch_counters(tmp_path: Path) -> None:
    source = PResNet(50, return_idx=[1, 2, 3], freeze_norm=False)
    path = tmp_path / "ResNet50_vd.pth"
    torch.save(source.state_dict(), path)
    frozen = PResNet(50, return_idx=[1, 2, 3], freeze_at=0, freeze_norm=True)
    report = load_backbone_weights(frozen, path)
    assert report.unexpected == [] and report.missing == []
    assert torch.equal(
        frozen.res_layers[0].blocks[0].branch2a.norm.running_var,
        source.res_layers[0].blocks[0].branch2a.norm.running_var,
    )
