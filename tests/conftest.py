"""Shared fixtures: the project root, NVIDIA's packaged skill (TAO_SKILL_DIR), a tiny synthetic dataset."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# NVIDIA's packaged RT-DETR skill (schemas, manifest, spec templates): the compatibility reference.
# It is not part of the repository; TAO_SKILL_DIR names its folder (default ../shared/tao-skill).
TAO_SKILL = Path(os.environ.get("TAO_SKILL_DIR") or ROOT.parent / "shared" / "tao-skill")

# Never let a test write into the user's cache.
os.environ.setdefault("RTDETR_CACHE_DIR", str(ROOT / ".pytest_cache" / "rtdetr-cache"))

# Ctrl-C tests need SIGINT handled. A shell without job control starts background jobs with SIGINT
# ignored (`make test &`, nohup), Python then never raises KeyboardInterrupt, and the ignored
# disposition is inherited by every process a test starts; a handler here resets it for them all.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def tao_skill_dir() -> Path:
    """NVIDIA's packaged skill folder; the one place tests find it.

    Missing, the calling test skips, except under ``CI=true`` where it fails: CI must not pass
    without the compatibility tests.
    """
    if not (TAO_SKILL / "schemas" / "manifest.json").is_file():
        message = (
            f"NVIDIA's packaged RT-DETR skill is not at {TAO_SKILL}: set TAO_SKILL_DIR to the folder "
            "holding its schemas/ and references/ (default ../shared/tao-skill beside the repository)"
        )
        if os.environ.get("CI", "").strip().lower() in ("true", "1"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return TAO_SKILL


@pytest.fixture(scope="session")
def tao_skill() -> Path:
    return tao_skill_dir()


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic COCO dataset (the embedded default's generator, small sizes)."""
    from model.data.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("synthetic")
    generate_dataset(out, train=16, val=8, test=8, size=64, classes=3, seed=0)
    return out


def data_sources(data: Path) -> dict:
    """The ``dataset`` data-source keys of a spec pointing at a synthetic dataset folder."""
    return {
        "train_data_sources": [
            {
                "image_dir": str(data / "train" / "images.tar.gz"),
                "json_file": str(data / "train" / "annotations.json"),
            }
        ],
        "val_data_sources": {
            "image_dir": str(data / "val" / "images.tar.gz"),
            "json_file": str(data / "val" / "annotations.json"),
        },
        "test_data_sources": {
            "image_dir": str(data / "test" / "images.tar.gz"),
            "json_file": str(data / "test" / "annotations.json"),
        },
        "infer_data_sources": {
            "image_dir": [str(data / "test" / "images.tar.gz")],
            "classmap": str(data / "label_map.txt"),
        },
        "num_classes": 4,
        "eval_class_ids": [1, 2, 3],
    }


def tiny_spec(data: Path, results_dir: Path, **sections: dict) -> dict:
    """A tiny, fast RT-DETR spec (ResNet-18, hidden 32, 64x64) on a synthetic dataset folder."""
    spec = {
        "results_dir": str(results_dir),
        "dataset": {
            **data_sources(data),
            "batch_size": 4,
            "workers": 1,
            "dataset_type": "default",
            "pin_memory": False,
            "augmentation": {
                "multi_scales": [64],
                "train_spatial_size": [64, 64],
                "eval_spatial_size": [64, 64],
                "distortion_prob": 0.0,
                "iou_crop_prob": 0.0,
            },
        },
        "model": {
            "backbone": "resnet_18",
            "hidden_dim": 32,
            "nheads": 4,
            "feat_channels": [32, 32, 32],
            "dim_feedforward": 64,
            "expansion": 0.5,
            "dec_layers": 2,
            "num_queries": 20,
            "num_select": 20,
            "dn_number": 10,
        },
        "train": {
            "num_epochs": 2,
            "checkpoint_interval": 1,
            "validation_interval": 1,
            "activation_checkpoint": False,
            "optim": {"lr": 0.001, "lr_backbone": 0.001, "warmup_steps": 0},
        },
    }
    for name, values in sections.items():
        spec[name] = {**spec.get(name, {}), **values}
    return spec


def write_spec(path: Path, spec: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
