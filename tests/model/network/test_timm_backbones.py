"""TAO's ConvNeXt / EfficientViT backbones built from timm: shapes, strides, weights, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.errors import CheckpointError, ConfigError
from model.network.backbones.timm_backbone import TIMM_BACKBONES, TimmBackbone

# Channels at strides 8/16/32 of TAO's definitions (TAO width_list[2:] / ConvNeXt dims[1:]).
TAO_CHANNELS = {
    "convnext_tiny": [192, 384, 768],
    "convnext_small": [192, 384, 768],
    "convnext_base": [256, 512, 1024],
    "convnext_large": [384, 768, 1536],
    "convnext_xlarge": [512, 1024, 2048],
    "efficientvit_b0": [32, 64, 128],
    "efficientvit_b1": [64, 128, 256],
    "efficientvit_b2": [96, 192, 384],
    "efficientvit_b3": [128, 256, 512],
    "efficientvit_l0": [128, 256, 512],
    "efficientvit_l1": [128, 256, 512],
    "efficientvit_l2": [128, 256, 512],
    "efficientvit_l3": [256, 512, 1024],
}


def test_every_tao_name_is_listed():
    assert set(TIMM_BACKBONES) == set(TAO_CHANNELS)


@pytest.mark.parametrize("name", ["convnext_tiny", "efficientvit_b0", "efficientvit_l0"])
def test_forward_backward_smallest_of_each_family(name):
    torch.manual_seed(0)
    backbone = TimmBackbone(name, [1, 2, 3])
    x = torch.randn(1, 3, 128, 128)
    outs = backbone(x)
    assert backbone.out_channels == TAO_CHANNELS[name]
    assert backbone.out_strides == [8, 16, 32]
    assert [tuple(o.shape) for o in outs] == [
        (1, c, 128 // s, 128 // s) for c, s in zip(backbone.out_channels, backbone.out_strides)
    ]
    sum(o.square().mean() for o in outs).backward()
    no_grad = [n for n, p in backbone.named_parameters() if p.grad is None]
    assert no_grad == []


@pytest.mark.parametrize("name", sorted(TIMM_BACKBONES))
def test_every_tao_backbone_builds(name):
    with torch.device("meta"):
        backbone = TimmBackbone(name, [1, 2, 3])
    assert backbone.out_channels == TAO_CHANNELS[name]
    assert backbone.out_strides == [8, 16, 32]
    params = list(backbone.parameters())
    assert params and all(p.is_meta for p in params)


def test_efficientvit_l0_is_shallower_than_l1():
    with torch.device("meta"):
        counts = {
            n: sum(p.numel() for p in TimmBackbone(n, [1, 2, 3]).parameters())
            for n in ("efficientvit_l0", "efficientvit_l1")
        }
    assert counts["efficientvit_l0"] < counts["efficientvit_l1"]


def test_return_idx_selects_stages_and_drops_later_ones():
    full = TimmBackbone("efficientvit_b0", [1, 2, 3])
    early = TimmBackbone("efficientvit_b0", [0, 1])
    assert early.out_strides == [4, 8]
    assert early.out_channels == [16, 32]
    outs = early(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 16), (2, 32, 8, 8)]
    assert sum(p.numel() for p in early.parameters()) < sum(p.numel() for p in full.parameters())


@pytest.mark.parametrize("bad", [[], [1, 4], [3, 2], [1, 1], "123", [True, 2]])
def test_bad_return_idx_is_a_config_error(bad):
    with pytest.raises(ConfigError, match=r"model\.return_interm_indices"):
        TimmBackbone("efficientvit_b0", bad)


def _wrap(state, how):
    if how == "bare":
        return state
    if how == "model":
        return {"model": state}
    # A TAO / Lightning training checkpoint: full-model keys under "state_dict".
    return {"state_dict": {f"model.model.backbone.{k}": v for k, v in state.items()}, "epoch": 3}


@pytest.mark.parametrize("how", ["bare", "model", "tao"])
def test_state_dict_round_trips_through_pretrained_path(tmp_path, how):
    torch.manual_seed(1)
    source = TimmBackbone("efficientvit_b0", [1, 2, 3]).eval()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.02 * torch.randn_like(p))
        for name, b in source.named_buffers():
            if name.endswith("running_mean"):
                b.add_(0.1)
    path = tmp_path / "backbone.pth"
    torch.save(_wrap(source.body.state_dict(), how), path)
    loaded = TimmBackbone("efficientvit_b0", [1, 2, 3], pretrained_path=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(source(x), loaded(x)):
            torch.testing.assert_close(a, b)


def _to_meta_layout(key: str) -> str:
    """timm ConvNeXt key -> the layout of Meta's ConvNeXt release (stem and stage 0 only)."""
    key = key.replace("stem.", "downsample_layers.0.").replace(".blocks.", ".")
    return key.replace("conv_dw", "dwconv").replace("mlp.fc1", "pwconv1").replace("mlp.fc2", "pwconv2")


def test_loads_meta_convnext_checkpoint(tmp_path):
    torch.manual_seed(2)
    source = TimmBackbone("convnext_tiny", [0])
    for p in source.parameters():
        p.data.normal_(0, 0.1)
    meta = {_to_meta_layout(k): v for k, v in source.body.state_dict().items()}
    assert "downsample_layers.0.0.weight" in meta and "stages.0.2.pwconv1.weight" in meta
    meta["head.weight"] = torch.zeros(1000, 768)  # classifier of the release, not part of the backbone
    path = tmp_path / "convnext_tiny_1k_224.pth"
    torch.save({"model": meta}, path)
    loaded = TimmBackbone("convnext_tiny", [0], pretrained_path=str(path))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(source(x)[0], loaded(x)[0])


def test_tensors_of_another_shape_are_skipped(tmp_path):
    source = TimmBackbone("efficientvit_b0", [1, 2, 3])
    state = source.body.state_dict()
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    target = TimmBackbone("efficientvit_b0", [1, 2, 3])
    report = target.load_pretrained(str(path))
    assert [s.split(" ")[0] for s in report["skipped"]] == [key]
    assert report["missing"] == [key]
    assert len(report["loaded"]) == len(state) - 1


def test_garbage_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.pth"):
        TimmBackbone("efficientvit_b0", [1, 2, 3], pretrained_path=str(path))


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere\.pth"):
        TimmBackbone("efficientvit_b0", [1, 2, 3], pretrained_path=str(tmp_path / "nothere.pth"))


def test_checkpoint_of_another_model_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)}, path)
    with pytest.raises(CheckpointError, match=r"other\.pth.*shares no tensor"):
        TimmBackbone("efficientvit_b0", [1, 2, 3], pretrained_path=str(path))


def test_checkpoint_of_another_size_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "b1.pth"
    with torch.device("meta"):
        b1 = TimmBackbone("efficientvit_b1", [1, 2, 3])
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in b1.body.state_dict().items()}, path)
    with pytest.raises(CheckpointError, match=r"b1\.pth.*differ in shape"):
        TimmBackbone("efficientvit_b0", [1, 2, 3], pretrained_path=str(path))


def test_unknown_name_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"model\.backbone.*'convnext_huge'.*convnext_tiny.*efficientvit_l3"
    ):
        TimmBackbone("convnext_huge", [1, 2, 3])


def test_name_missing_from_installed_timm_is_a_config_error(monkeypatch):
    monkeypatch.setitem(TIMM_BACKBONES, "convnext_tiny", "convnext_not_in_timm")
    with pytest.raises(ConfigError, match="does not provide"):
        TimmBackbone("convnext_tiny", [1, 2, 3])


def test_freeze_fixes_parameters_and_norm_statistics():
    backbone = TimmBackbone("efficientvit_b0", [1, 2, 3], freeze=True)
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not any(m.training for m in backbone.body.modules())
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone(torch.randn(2, 3, 64, 64))
    after = backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_safetensors_checkpoint_loads(tmp_path: Path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    source = TimmBackbone("efficientvit_b0", [1, 2, 3]).eval()
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in source.body.state_dict().items()}, str(path))
    loaded = TimmBackbone("efficientvit_b0", [1, 2, 3], pretrained_path=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(source(x)[-1], loaded(x)[-1])


def test_rtdetr_with_timm_backbone():
    from model import build_model

    spec = {
        "model": {
            "backbone": "convnext_tiny",
            "train_backbone": False,
            "hidden_dim": 64,
            "feat_channels": [64, 64, 64],
            "dim_feedforward": 128,
            "dec_layers": 1,
            "num_queries": 10,
            "num_select": 10,
            "dn_number": 0,
        },
        "dataset": {"num_classes": 3, "augmentation": {"eval_spatial_size": [128, 128]}},
    }
    torch.manual_seed(0)
    model = build_model(spec).eval()
    assert isinstance(model.backbone, TimmBackbone)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 128))
    assert tuple(out["pred_logits"].shape) == (1, 10, 3)
    assert tuple(out["pred_boxes"].shape) == (1, 10, 4)
    assert torch.isfinite(out["pred_boxes"]).all()
