"""TAO's FAN backbones (fan_tiny/small/base/large): sizes, feature maps, RT-DETR wiring, weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model import build_model
from model.deploy.onnx_export import compare_with_onnxruntime, export_onnx, reference_outputs
from model.errors import CheckpointError, ConfigError
from model.network.backbones.fan import FAN_VARIANTS, FANBackbone, FANHybrid
from model.network.backbones.presnet import PResNet
from model.network.rtdetr import build_criterion
from model.spec.rules import cross_field_problems

pytestmark = pytest.mark.usefixtures("one_thread")

# "#Params" of the FAN-Hybrid ImageNet-1K classifiers in the NVlabs/FAN README (ICML 2022 paper),
# the networks TAO's fan_tiny/small/base/large are cut from.
PUBLISHED_MILLIONS = {"fan_tiny": 7.4, "fan_small": 26.3, "fan_base": 50.4, "fan_large": 76.8}
# Channels at strides 8/16/32 in TAO's RT-DETR (out_channels[1:] of its fan_* builders).
TAO_CHANNELS = {
    "fan_tiny": [256, 192, 768],
    "fan_small": [256, 384, 768],
    "fan_base": [256, 448, 768],
    "fan_large": [256, 480, 768],
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tiny_spec(backbone: str = "fan_tiny", **model_keys) -> dict:
    return {
        "dataset": {"num_classes": 3, "augmentation": {"eval_spatial_size": [64, 64]}},
        "model": {
            "backbone": backbone,
            "hidden_dim": 32,
            "nheads": 4,
            "feat_channels": [32, 32, 32],
            "dim_feedforward": 64,
            "expansion": 0.5,
            "dec_layers": 2,
            "num_queries": 20,
            "num_select": 20,
            "dn_number": 10,
            **model_keys,
        },
    }


def test_tao_names_are_the_four_hybrid_variants():
    assert set(FAN_VARIANTS) == set(PUBLISHED_MILLIONS) == set(TAO_CHANNELS)
    assert {v.nvlabs_name for v in FAN_VARIANTS.values()} == {
        "fan_tiny_8_p4_hybrid",
        "fan_small_12_p4_hybrid",
        "fan_base_16_p4_hybrid",
        "fan_large_16_p4_hybrid",
    }


@pytest.mark.parametrize("name", sorted(PUBLISHED_MILLIONS))
def test_imagenet_classifier_matches_published_parameter_count(name):
    """The 1000-class FAN-Hybrid classifier (stem, FAN blocks, class attention, norm, head)."""
    with torch.device("meta"):
        classifier = FANHybrid(name, num_classes=1000)
    assert _count(classifier) / 1e6 == pytest.approx(PUBLISHED_MILLIONS[name], rel=0.01)


@pytest.mark.parametrize("name", sorted(FAN_VARIANTS))
def test_detection_backbone_is_the_classifier_without_head_plus_tao_detection_parts(name):
    with torch.device("meta"):
        classifier = FANHybrid(name, num_classes=1000)
        backbone = FANBackbone(name, [1, 2, 3])
    dim = FAN_VARIANTS[name].embed_dim
    head_and_norm = (dim * 1000 + 1000) + 2 * dim
    out_norms = 2 * sum(TAO_CHANNELS[name])
    downsample = dim * 768 * 9 + 768
    assert _count(backbone) == _count(classifier) - head_and_norm + out_norms + downsample
    assert backbone.out_channels == TAO_CHANNELS[name]
    assert backbone.out_strides == [8, 16, 32]


def test_parameter_names_follow_nvidia_checkpoints():
    with torch.device("meta"):
        keys = set(FANBackbone("fan_tiny", [0, 1, 2, 3]).state_dict())
    for key in (
        "patch_embed.backbone.stem.0.weight",
        "patch_embed.backbone.stages.0.blocks.2.mlp.fc1.weight",
        "patch_embed.backbone.stages.1.downsample.1.weight",
        "patch_embed.proj.weight",
        "pos_embed.token_projection.weight",
        "blocks.7.attn.kv.weight",
        "blocks.0.mlp.temperature",
        "blocks.0.mlp.mlp_v.dwconv.bn.running_var",
        "blocks.0.mlp.norm_v.weight",
        "cls_token",
        "cls_attn_blocks.1.attn.k.weight",
        "cls_attn_blocks.1.gamma2",
        "learnable_downsample.weight",
        "out_norm0.weight",
        "out_norm3.bias",
    ):
        assert key in keys, key


@pytest.mark.parametrize("return_idx", [[1, 2, 3], [0, 1, 2], [0, 1]])
def test_fan_tiny_maps_at_tao_strides_and_every_parameter_gets_a_gradient(return_idx):
    torch.manual_seed(0)
    backbone = FANBackbone("fan_tiny", return_idx)
    outs = backbone(torch.randn(2, 3, 64, 64))
    channels = [128, 256, 192, 768]
    assert backbone.out_channels == [channels[i] for i in return_idx]
    assert backbone.out_strides == [4 * 2**i for i in return_idx]
    assert [tuple(o.shape) for o in outs] == [
        (2, channels[i], 64 >> (2 + i), 64 >> (2 + i)) for i in return_idx
    ]
    sum(o.square().mean() for o in outs).backward()
    # DDP runs without find_unused_parameters: parts only unreturned stages need are not built
    assert [n for n, p in backbone.named_parameters() if p.grad is None] == []


def test_unreturned_late_stages_are_not_built():
    with torch.device("meta"):
        full = FANBackbone("fan_large", [1, 2, 3])
        to_16 = FANBackbone("fan_large", [1, 2])
        convs = FANBackbone("fan_large", [0, 1])
    assert len(full.blocks) == 22 and len(to_16.blocks) == 19  # TAO takes stride 16 after block 18
    assert to_16.learnable_downsample is None and len(to_16.cls_attn_blocks) == 0
    assert len(convs.blocks) == 0 and convs.patch_embed.proj is None
    assert _count(convs) < _count(to_16) < _count(full)


@pytest.mark.parametrize("bad", [[], [1, 4], [3, 2], [2, 2], "123", [True, 2]])
def test_bad_return_interm_indices_name_the_key(bad):
    with pytest.raises(ConfigError, match=r"model\.return_interm_indices"):
        FANBackbone("fan_tiny", bad)


def test_spec_with_a_fan_backbone_passes_the_cross_field_rules():
    assert cross_field_problems({"model": {"backbone": "fan_small"}}, "train") == []


@pytest.mark.parametrize("name", sorted(FAN_VARIANTS))
def test_full_rtdetr_wires_each_variants_channels_to_the_encoder(name):
    with torch.device("meta"):
        model = build_model(_tiny_spec(name))
    assert isinstance(model.backbone, FANBackbone)
    assert model.encoder.in_channels == TAO_CHANNELS[name]
    assert [proj.conv.in_channels for proj in model.encoder.input_proj] == TAO_CHANNELS[name]


def test_fan_tiny_rtdetr_forward_and_training_step_on_a_tiny_image():
    torch.manual_seed(0)
    spec = _tiny_spec()
    model = build_model(spec)
    feats = model.backbone(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(1, 256, 8, 12), (1, 192, 4, 6), (1, 768, 2, 3)]
    model.train()
    images = torch.rand(2, 3, 64, 64)
    targets = [
        {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.4]])},
        {"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.3]])},
    ]
    out = model(images, targets)
    losses = build_criterion(spec)(out, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    model.eval()
    with torch.no_grad():
        pred = model(images)
    assert pred["pred_logits"].shape == (2, 20, 3)


def test_train_backbone_false_freezes_weights_and_statistics():
    torch.manual_seed(0)
    model = build_model(_tiny_spec(train_backbone=False)).train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not model.backbone.training
    bn = model.backbone.blocks[0].mlp.mlp_v.dwconv.bn
    before = bn.running_mean.clone()
    model(torch.rand(2, 3, 64, 64), [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5] * 4])}] * 2)
    assert torch.equal(bn.running_mean, before)


def test_pretrained_backbone_path_loads_a_saved_fan_state_dict(tmp_path: Path):
    torch.manual_seed(1)
    source = FANBackbone("fan_tiny", [1, 2, 3])
    path = tmp_path / "fan_tiny_backbone.pth"
    # as written inside a detector checkpoint: a wrapper key and the detector's module prefix
    torch.save({"model": {f"model.backbone.{k}": v for k, v in source.state_dict().items()}}, path)
    torch.manual_seed(2)
    model = build_model(_tiny_spec(pretrained_backbone_path=str(path)))
    loaded = model.backbone.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_pretrained_backbone_path_loads_an_imagenet_classifier_checkpoint(tmp_path: Path):
    torch.manual_seed(3)
    classifier = FANHybrid("fan_tiny", num_classes=1000)
    state = classifier.state_dict()
    # a ConvNeXt stem saved in timm's Linear layout holds its MLP weights 2-D
    fc1 = "patch_embed.backbone.stages.1.blocks.0.mlp.fc1.weight"
    state[fc1] = state[fc1].flatten(1)
    path = tmp_path / "fan_hybrid_tiny.pth.tar"
    torch.save({"state_dict": state, "epoch": 300}, path)
    backbone = FANBackbone("fan_tiny", [1, 2, 3], pretrained_path=str(path))
    own = backbone.state_dict()
    assert torch.equal(own[fc1].flatten(1), state[fc1])
    assert torch.equal(own["blocks.3.mlp.q.weight"], state["blocks.3.mlp.q.weight"])
    assert torch.equal(own["cls_attn_blocks.0.attn.v.bias"], state["cls_attn_blocks.0.attn.v.bias"])


def test_pretrained_backbone_path_of_another_network_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "resnet18.pth"
    torch.save(PResNet(18, variant="d", return_idx=[1, 2, 3]).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"model.pretrained_backbone_path: .*resnet18.pth.*fan_tiny"):
        FANBackbone("fan_tiny", [1, 2, 3], pretrained_path=str(path))


def test_fan_tiny_rtdetr_exports_to_onnx_with_a_dynamic_batch(tmp_path: Path):
    torch.manual_seed(0)
    model = build_model(_tiny_spec()).eval()
    images = torch.rand(3, 3, 64, 64)
    reference = reference_outputs(model, images)
    path = export_onnx(model, tmp_path / "fan_tiny.onnx", height=64, width=64, batch_size=-1)
    assert compare_with_onnxruntime(reference, path, images)["max"] < 1e-4
