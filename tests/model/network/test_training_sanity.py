"""Training behaviour of a tiny RT-DETR: gradients, empty targets, overfitting, deploy, shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model import build_model
from model.errors import ConfigError
from model.network.rtdetr import build_criterion, build_postprocessor

SIZE = 128
NUM_CLASSES = 4


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_spec() -> dict:
    return {
        "model": {
            "backbone": "resnet_18",
            "hidden_dim": 64,
            "feat_channels": [64, 64, 64],
            "dim_feedforward": 128,
            "expansion": 0.5,
            "dec_layers": 3,
            "num_queries": 30,
            "num_select": 30,
            "dn_number": 20,
        },
        "dataset": {"num_classes": NUM_CLASSES, "augmentation": {"eval_spatial_size": [SIZE, SIZE]}},
    }


def synthetic_batch(seed: int = 0, n_images: int = 4) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Solid rectangles (classes 0, 2) and circles (1, 3) in distinct colours on a dark background."""
    rng = np.random.default_rng(seed)
    colours = [(230, 40, 40), (40, 220, 60), (50, 80, 240), (240, 220, 40)]
    images, targets = [], []
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for _ in range(n_images):
        img = np.full((SIZE, SIZE, 3), 20, dtype=np.uint8)
        labels, boxes = [], []
        for _ in range(rng.integers(1, 4)):
            cls = int(rng.integers(0, NUM_CLASSES))
            w, h = rng.integers(24, 56, size=2)
            if cls % 2:  # circle: equal sides
                h = w
            x0, y0 = rng.integers(0, SIZE - w), rng.integers(0, SIZE - h)
            if cls % 2:
                r = w / 2
                mask = (xx - (x0 + r)) ** 2 + (yy - (y0 + r)) ** 2 <= r * r
            else:
                mask = (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
            img[mask] = colours[cls]
            labels.append(cls)
            boxes.append([(x0 + w / 2) / SIZE, (y0 + h / 2) / SIZE, w / SIZE, h / SIZE])
        images.append(torch.from_numpy(img).permute(2, 0, 1).float() / 255)
        targets.append({"labels": torch.tensor(labels, dtype=torch.int64), "boxes": torch.tensor(boxes)})
    return torch.stack(images), targets


def empty_target() -> dict[str, torch.Tensor]:
    return {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}


def _loss(model: torch.nn.Module, criterion: torch.nn.Module, images, targets) -> torch.Tensor:
    losses = criterion(model(images, targets), targets)
    return sum(losses.values())


def _params_without_grad(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


@pytest.fixture()
def tiny() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return build_model(tiny_spec()).train(), build_criterion(tiny_spec())


def test_one_step_gives_every_trainable_parameter_a_gradient(tiny) -> None:
    model, criterion = tiny
    images, targets = synthetic_batch()
    outputs = model(images, targets)
    losses = criterion(outputs, targets)
    # 3 losses x (final + 2 aux + 1 encoder + 3 denoising)
    assert len(losses) == 21
    sum(losses.values()).backward()
    assert _params_without_grad(model) == []


def test_batch_mixing_empty_and_annotated_images_trains(tiny) -> None:
    model, criterion = tiny
    images, targets = synthetic_batch(n_images=3)
    targets[1] = empty_target()
    loss = _loss(model, criterion, images, targets)
    assert math.isfinite(loss.item())
    loss.backward()
    assert _params_without_grad(model) == []


def test_batch_without_any_ground_truth_keeps_the_full_graph(tiny) -> None:
    model, criterion = tiny
    images, _ = synthetic_batch(n_images=2)
    targets = [empty_target(), empty_target()]
    outputs = model(images, targets)
    assert outputs["dn_meta"]["dn_num_split"][0] == 2  # one masked dummy group
    loss = sum(criterion(outputs, targets).values())
    assert math.isfinite(loss.item())
    loss.backward()
    assert _params_without_grad(model) == []  # DDP needs no find_unused_parameters


@pytest.mark.slow  # about 20-40 s on the 2-core CPU
def test_tiny_model_overfits_one_batch(tiny) -> None:
    model, criterion = tiny
    images, targets = synthetic_batch(seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    history = []
    for _ in range(60):
        loss = _loss(model, criterion, images, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    start, end = np.mean(history[:3]), np.mean(history[-3:])
    assert end < 0.5 * start, f"loss went from {start:.2f} to {end:.2f}"


def test_deploy_keeps_eval_outputs(tiny) -> None:
    model, _ = tiny
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    model.eval()
    images, _ = synthetic_batch(n_images=2)
    with torch.no_grad():
        before = model(images)
        model.deploy()
        after = model(images)
    assert not any(hasattr(m, "conv1") for m in model.modules() if type(m).__name__ == "RepVggBlock")
    torch.testing.assert_close(after["pred_logits"], before["pred_logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(after["pred_boxes"], before["pred_boxes"], atol=1e-5, rtol=0)


def test_tao_default_spec_builds_r50_with_official_outputs() -> None:
    model = build_model({}).eval()  # every key at TAO's default: resnet_50, 6 layers, 300 queries, 640x640
    assert 42.5e6 < sum(p.numel() for p in model.parameters()) < 43.3e6
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("backbone.conv1.") for n in frozen)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 640, 640))
    assert out["pred_logits"].shape == (1, 300, 80)
    assert out["pred_boxes"].shape == (1, 300, 4)
    assert ((out["pred_boxes"] >= 0) & (out["pred_boxes"] <= 1)).all()
    detections = build_postprocessor({})(out, torch.tensor([[800, 600]]))
    assert detections[0]["boxes"].shape == (300, 4) and detections[0]["labels"].max() < 80


def test_eval_at_another_input_size_recomputes_anchors_and_positions(tiny) -> None:
    model, _ = tiny
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 160, 192))
    assert out["pred_logits"].shape == (1, 30, NUM_CLASSES)
    assert torch.isfinite(out["pred_boxes"]).all()


@pytest.mark.parametrize(
    ("backbone", "message"), [("resnet_152", "unknown backbone"), ("fan_huge", "unknown FAN backbone")]
)
def test_unsupported_backbones_raise_config_error(backbone: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model({"model": {"backbone": backbone}})
