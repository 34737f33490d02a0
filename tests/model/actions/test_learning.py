"""It really learns: overfit a handful of synthetic images, then `rtdetr evaluate` on them."""

from __future__ import annotations

import json

import pytest

from model.data.synthetic import generate_dataset
from tests.conftest import tiny_spec, write_spec
from tests.model.actions.test_train import rtdetr, status_lines

pytestmark = pytest.mark.slow


def test_overfit_then_evaluate_reaches_map50_08(tmp_path):
    data = tmp_path / "data"
    generate_dataset(data, train=8, val=8, test=8, size=96, classes=3, seed=7)
    spec = tiny_spec(data, tmp_path / "out")
    train_split = {
        "image_dir": str(data / "train" / "images.tar.gz"),
        "json_file": str(data / "train" / "annotations.json"),
    }
    spec["dataset"].update(
        train_data_sources=[train_split],
        val_data_sources=train_split,
        test_data_sources=train_split,
        batch_size=4,
        eval_class_ids=[1, 2, 3],
        augmentation={
            "multi_scales": [96],
            "train_spatial_size": [96, 96],
            "eval_spatial_size": [96, 96],
            "distortion_prob": 0.0,
            "iou_crop_prob": 0.0,
        },
    )
    spec["model"].update(
        hidden_dim=64,
        nheads=4,
        feat_channels=[64, 64, 64],
        dim_feedforward=128,
        dec_layers=3,
        num_queries=30,
        num_select=30,
        dn_number=20,
    )
    spec["train"].update(
        num_epochs=130,
        validation_interval=130,
        checkpoint_interval=130,
        clip_grad_norm=0.1,
        optim={"lr": 0.001, "lr_backbone": 0.001, "warmup_steps": 20, "lr_steps": [105]},
    )
    path = write_spec(tmp_path / "spec.yaml", spec)
    proc = rtdetr("train", "-e", str(path), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "out" / "train" / "rtdetr_model_latest.pth"
    proc = rtdetr("evaluate", "-e", str(path), f"evaluate.checkpoint={ckpt}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "evaluate" / "results.json").read_text())
    last = status_lines(tmp_path / "out" / "evaluate")[-1]
    assert float(last["kpi"]["test_mAP50"]) == pytest.approx(results["mAP50"], abs=1e-6)
    assert results["mAP50"] >= 0.8, results
