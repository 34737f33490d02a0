"""Parity with the official RT-DETRv2-R18 (rtdetrv2_pytorch @ 068dfde) on a refilled checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import build_model, load_weights
from model.network.rtdetr import build_postprocessor
from tests.model.official_fixture import FIXTURE_DIR, fixture_json, official_state_dict, r18_spec

TOL = 1e-6


@pytest.fixture(scope="module")
def parity_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    model = build_model(r18_spec())
    checkpoint = tmp_path_factory.mktemp("ckpt") / "rtdetrv2_r18vd_official_layout.pth"
    torch.save({"ema": {"module": official_state_dict(model.state_dict())}}, checkpoint)
    report = load_weights(model, checkpoint)
    model = model.double().eval()
    image = np.load(FIXTURE_DIR / "input.npy")
    x = torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255
    with torch.no_grad():
        feats = model.backbone(x)
        encoded = model.encoder(feats)
        outputs = model.decoder(encoded)
        detections = build_postprocessor(r18_spec())(outputs, torch.tensor([[640, 640]]))
    return {
        "model": model,
        "report": report,
        "feats": feats,
        "encoded": encoded,
        "outputs": outputs,
        "detections": detections,
        "expected": dict(np.load(FIXTURE_DIR / "expected.npz")),
    }


def test_parameter_names_and_shapes_equal_the_official_state_dict() -> None:
    model = build_model(r18_spec())
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    expected = [(e["key"], e["shape"]) for e in fixture_json()["keys"]]
    assert got == expected


def test_official_checkpoint_loads_completely(parity_run: dict) -> None:
    report = parity_run["report"]
    assert report.source == "ema.module"
    assert report.missing == []
    assert report.unexpected == []
    assert report.skipped == []
    filled = [e["key"] for e in fixture_json()["keys"] if e["filled"]]
    assert report.loaded == filled


@pytest.mark.parametrize("part", ["backbone_outputs", "encoder_outputs"])
def test_intermediate_feature_maps_match(parity_run: dict, part: str) -> None:
    maps = parity_run["feats"] if part == "backbone_outputs" else parity_run["encoded"]
    for tensor, ref in zip(maps, fixture_json()[part], strict=True):
        assert list(tensor.shape) == ref["shape"]
        assert tensor.sum().item() == pytest.approx(ref["sum"], rel=1e-9)
        assert tensor.abs().sum().item() == pytest.approx(ref["abs_sum"], rel=1e-9)
        np.testing.assert_allclose(tensor.flatten()[:8].numpy(), ref["first"], atol=1e-9)


def test_predictions_match_the_official_outputs(parity_run: dict) -> None:
    out, expected = parity_run["outputs"], parity_run["expected"]
    logits_diff = np.abs(out["pred_logits"].numpy() - expected["pred_logits"]).max()
    boxes_diff = np.abs(out["pred_boxes"].numpy() - expected["pred_boxes"]).max()
    print(f"max |pred_logits diff| = {logits_diff:.3e}, max |pred_boxes diff| = {boxes_diff:.3e}")
    assert out["pred_logits"].shape == (1, 300, 80)
    assert out["pred_boxes"].shape == (1, 300, 4)
    assert logits_diff < TOL
    assert boxes_diff < TOL


def test_postprocessed_detections_match(parity_run: dict) -> None:
    det, expected = parity_run["detections"][0], parity_run["expected"]
    np.testing.assert_array_equal(det["labels"].numpy(), expected["labels"])
    np.testing.assert_allclose(det["boxes"].numpy(), expected["boxes"], atol=1e-6)
    np.testing.assert_allclose(det["scores"].numpy(), expected["scores"], atol=1e-9)
